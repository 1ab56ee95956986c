"""The gallery in a real headless Chromium (Debian's `chromium`, driven by playwright with
`executable_path`: no browser download): demo-like pins (the demo's generator) on real Milvus,
Neo4j and Kafka; the recently-embedded strip, a text search, a click through to a pin and its
neighbours — every picture must have rendered (naturalWidth > 0). A screenshot of each step is
saved under var/test-artifacts/ (git-ignored; PINCLIP_TEST_ARTIFACTS moves it)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_world import World, build_world, destroy_world

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IMAGES_RENDERED = """(selector) => {
  const images = [...document.querySelectorAll(selector)];
  return images.length > 0 && images.every((i) => i.complete && i.naturalWidth > 0);
}"""


def artifacts_dir() -> Path:
    default = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"
    path = Path(os.environ.get("PINCLIP_TEST_ARTIFACTS", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:  # a missing browser is a broken environment, not a reason to skip
        pytest.fail("no chromium on PATH: apt-get install chromium (.ci/run installs it)")
    return path


@pytest.fixture(scope="module")
def gallery_world(
    tmp_path_factory: pytest.TempPathFactory, neo4j_settings: Any, export_tiny_model: Any
) -> Iterator[World]:
    from trainer.generator import GeneratorConfig, generate

    root = tmp_path_factory.mktemp("gallery")
    generate(root / "data", GeneratorConfig(num_pins=60, num_boards=10, num_users=5, seed=3))
    world = build_world(
        root, str(root / "milvus.db"), neo4j_settings, export_tiny_model, 48, root / "data"
    )
    try:
        yield world
    finally:
        destroy_world(world)


def announce_embedded(world: World, kafka_bootstrap: str, topic: str) -> None:
    """PinEmbedded events as the worker sends them, for the recently-embedded strip."""
    from kafka import KafkaProducer

    from streams.events import PinEmbedded

    now = datetime.now(UTC)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        for i, pin in enumerate(world.pins[:12]):
            embedded_at = now + timedelta(milliseconds=i)
            event = PinEmbedded(
                pin_id=pin.pin_id,
                model_versions=[1],
                created_at=embedded_at - timedelta(milliseconds=180 + i),
                embedded_at=embedded_at,
                latency_ms=180.0 + i,
            )
            producer.send(topic, event.to_json_bytes(), key=pin.pin_id.encode())
        producer.flush()
    finally:
        producer.close()


def test_gallery_search_and_click_through_render_pictures(
    gallery_world: World, kafka_bootstrap: str
) -> None:
    from playwright.sync_api import sync_playwright

    from pinclip.api.recent import KafkaRecentFeed
    from pinclip.api.serve import BackgroundServer

    world = gallery_world
    topic = f"{world.tag}.embedded"
    announce_embedded(world, kafka_bootstrap, topic)
    api = world.api(recent=KafkaRecentFeed(kafka_bootstrap, topic))
    out = artifacts_dir()
    errors: list[str] = []
    with (
        BackgroundServer(api) as server,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server.url + "/", wait_until="domcontentloaded")

            # The strip fills from Kafka with pictures, and the live model version shows.
            page.wait_for_function(IMAGES_RENDERED, arg="#recent-strip img", timeout=30_000)
            assert page.locator("#recent-strip li").count() >= 6
            assert page.locator("#model-version").inner_text() == "v1"

            # A text search: a word of a real title.
            target = world.pins[0]
            word = next(w for w in target.title.split() if len(w) > 3)
            page.fill("#q", word)
            page.press("#q", "Enter")
            # The grid already shows the newest pins: wait for the search's own results first.
            page.wait_for_function(
                "w => document.querySelector('#results-title').innerText.includes(w)",
                arg=word,
                timeout=30_000,
            )
            page.wait_for_function(IMAGES_RENDERED, arg="#results img", timeout=30_000)
            assert page.locator("#results li.card").count() > 0
            assert word in page.locator("#results-title").inner_text()
            page.screenshot(path=str(out / "gallery-search.png"), full_page=True)

            # Click a result: its page, its neighbours with scores and pictures.
            first = page.locator("#results li.card").first
            opened_id = first.get_attribute("data-pin-id")
            first.locator("a").click()
            page.wait_for_selector("#pin-view:not([hidden])", timeout=30_000)
            page.wait_for_function(
                "() => document.querySelector('#results-title').innerText === 'Nearest neighbours'",
                timeout=30_000,
            )
            page.wait_for_function(IMAGES_RENDERED, arg="#results img", timeout=30_000)
            page.wait_for_function(IMAGES_RENDERED, arg="#pin-image", timeout=30_000)
            opened = world.by_id(str(opened_id))
            assert page.locator("#pin-title").inner_text() == opened.title
            assert page.locator("#results-title").inner_text() == "Nearest neighbours"
            neighbours = page.locator("#results li.card")
            assert neighbours.count() == 12
            assert opened_id not in [
                neighbours.nth(i).get_attribute("data-pin-id") for i in range(12)
            ]
            assert neighbours.first.locator(".card-meta").inner_text().startswith("score 0.")
            assert page.locator("#pin-version").inner_text().startswith("v1")
            page.screenshot(path=str(out / "gallery-pin.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
