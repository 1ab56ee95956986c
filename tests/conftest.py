"""Shared fixtures: real Kafka, Neo4j and Milvus (see pinclip.services.fixtures for the
resolution order), and the CI rule that a skipped test fails the run."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pinclip.services import fixtures
from pinclip.services.fixtures import Neo4jSettings, SkippedTest

pytest_plugins = ["pytester"]  # tests/unit/test_ci_policy.py runs pytest on pytest

_skipped: list[SkippedTest] = []

# `make test` runs pytest after `eval "$(pinclip services env)"`, which points the *app* at the
# Milvus server (PINCLIP_MILVUS_URI). Tests choose their Milvus explicitly — the `milvus_uri`
# fixture (lite and server), `milvus_server_uri`, or their own settings — so that variable must
# not turn a test that builds Settings() with the embedded milvus-lite default into a server test.
os.environ.pop("PINCLIP_MILVUS_URI", None)


def _resolved(resolver: Callable[[], fixtures.Provided]) -> Iterator[Any]:
    try:
        provided = resolver()
    except fixtures.Unavailable as exc:
        pytest.skip(str(exc))
    try:
        yield provided.value
    finally:
        provided.close()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker, e.g. "127.0.0.1:9092"."""
    yield from _resolved(fixtures.kafka_bootstrap)


@pytest.fixture(scope="session")
def neo4j_settings() -> Iterator[Neo4jSettings]:
    """A real Neo4j: `.uri`, `.user`, `.password` (str; empty when auth is off), `.database`."""
    yield from _resolved(fixtures.neo4j_settings)


@pytest.fixture(scope="session")
def milvus_server_uri() -> Iterator[str]:
    """URI of a real Milvus server (not lite)."""
    yield from _resolved(fixtures.milvus_server_uri)


@pytest.fixture(params=["lite", "server"])
def milvus_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every vector-store test runs twice: milvus-lite on a fresh local path, and a real
    Milvus server."""
    if request.param == "lite":
        return str(tmp_path / "milvus.db")
    return str(request.getfixturevalue("milvus_server_uri"))


@pytest.fixture
def clean_graph(neo4j_settings: Neo4jSettings, prefix: str) -> Iterator[Any]:
    """A GraphStore on the real Neo4j with its schema in place. The server is shared, so every
    node under the requesting module's `prefix` fixture is deleted afterwards."""
    from graph_store import GraphStore

    store = GraphStore(
        neo4j_settings.uri, neo4j_settings.user, neo4j_settings.password, neo4j_settings.database
    )
    store.ensure_schema()
    try:
        yield store
    finally:
        store.delete_by_prefix(prefix)
        store.close()


@pytest.fixture(scope="session")
def export_tiny_model() -> Callable[..., int]:
    """`export_tiny_model(registry_root, version)` writes a tiny random PinCLIP as v<version>
    (seeded by the version, so two versions embed differently); returns its dimension."""

    def export(root: Path, version: int = 1) -> int:
        import torch

        from encoder.config import PinClipConfig
        from encoder.export import export_model
        from encoder.model import PinClipModel

        torch.manual_seed(version)
        manifest = export_model(PinClipModel(PinClipConfig.tiny()), root / f"v{version}", version)
        return int(manifest.dim)

    return export


@pytest.fixture(scope="session")
def worker_config(kafka_bootstrap: str, neo4j_settings: Neo4jSettings) -> Callable[..., Any]:
    """`worker_config(tag, milvus_uri, root, **overrides)`: a WorkerConfig on the real services
    whose topics, consumer group, alias and collections are all namespaced by `tag`, with the
    registry and state under `root`."""
    from streams.config import Topics, WorkerConfig
    from streams.content import FetchPolicy

    def build(tag: str, milvus_uri: str, root: Path, **overrides: Any) -> WorkerConfig:
        values: dict[str, Any] = {
            "kafka_bootstrap": kafka_bootstrap,
            "topics": Topics.with_prefix(tag),
            "consumer_group": tag,
            "topic_partitions": 1,
            "neo4j_uri": neo4j_settings.uri,
            "neo4j_user": neo4j_settings.user,
            "neo4j_password": neo4j_settings.password,
            "milvus_uri": milvus_uri,
            "milvus_alias": f"{tag}_pins",
            "milvus_prefix": f"{tag}_v",
            "registry_url": str(root / "registry"),
            "state_dir": root / "state",
            "fetch": FetchPolicy(file_roots=(str(root),)),  # test images live under root
            "metrics_port": None,
        }
        return WorkerConfig(**{**values, **overrides})

    return build


@pytest.fixture(scope="session")
def run_pinclip() -> Callable[..., Any]:
    """`run_pinclip(*args, cwd=DIR, **settings)`: the real `pinclip` CLI in a subprocess, as a
    user runs it, with only the given PINCLIP_* settings (e.g. `registry_url=...`)."""
    import subprocess
    import sys

    def run(*args: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PINCLIP_")}
        env.update({f"PINCLIP_{name.upper()}": value for name, value in settings.items()})
        return subprocess.run(
            [sys.executable, "-m", "pinclip.cli", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    return run


def forget_stream_run(config: Any, tag: str) -> None:
    """Teardown of a worker run on the shared services: the run's Neo4j nodes (ids starting
    with `tag-`) and its Kafka topics (names starting with `tag`)."""
    from kafka.admin import KafkaAdminClient

    from graph_store import GraphStore

    with GraphStore(
        config.neo4j_uri, config.neo4j_user, config.neo4j_password.get_secret_value()
    ) as gs:
        gs.delete_by_prefix(f"{tag}-")
    admin = KafkaAdminClient(bootstrap_servers=config.kafka_bootstrap)
    try:
        admin.delete_topics([t for t in admin.list_topics() if t.startswith(tag)])
    finally:
        admin.close()


def until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.2) -> bool:
    """Poll `condition` until it holds (True) or `timeout_s` passes (False)."""
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)
    return True


@pytest.fixture
def stream_run(
    milvus_server_uri: str,
    worker_config: Callable[..., Any],
    export_tiny_model: Callable[..., int],
    tmp_path: Path,
) -> Iterator[Callable[..., tuple[Any, str, int]]]:
    """`stream_run(kind, **overrides)` -> (config, id prefix, dim): a WorkerConfig on the Milvus
    server namespaced by a fresh `<kind><random>` tag, with a tiny random model as v1 in its
    registry. Its collections, Neo4j nodes and Kafka topics are removed afterwards."""
    import uuid

    from vector_store import VectorStore

    runs: list[tuple[Any, str]] = []

    def make(kind: str, **overrides: Any) -> tuple[Any, str, int]:
        tag = kind + uuid.uuid4().hex[:8]
        config = worker_config(tag, milvus_server_uri, tmp_path, **overrides)
        runs.append((config, tag))
        return config, f"{tag}-", export_tiny_model(tmp_path / "registry", 1)

    yield make
    for config, tag in runs:
        vs = VectorStore(config.milvus_uri, alias=config.milvus_alias, prefix=config.milvus_prefix)
        vs.purge()
        vs.close()
        forget_stream_run(config, tag)


def record_alias_moves(vectors: Any) -> list[tuple[float, int, int]]:
    """Wraps a real VectorStore's `switch_alias`: each call appends (monotonic time, version,
    rows in that version at the moment of the move) before the move itself."""
    import time

    moves: list[tuple[float, int, int]] = []
    move = vectors.switch_alias

    def switch_alias(version: int, expected_count: int | None = None) -> Any:
        moves.append((time.monotonic(), version, vectors.count(version)))
        return move(version, expected_count)

    vectors.switch_alias = switch_alias
    return moves


def settings_of(config: Any, file_roots: Path, partitions: int = 3) -> dict[str, str]:
    """The PINCLIP_* settings (for `run_pinclip`) that reach a stream run's services, topics,
    registry and state, with image files read from under `file_roots`."""
    return {
        "kafka_bootstrap": config.kafka_bootstrap,
        "consumer_group": config.consumer_group,
        "topic_model_updates": config.topics.model_updates,
        "topic_reembed": config.topics.reembed,
        "topic_partitions": str(partitions),
        "kafka_session_timeout_s": "6",
        "neo4j_uri": config.neo4j_uri,
        "neo4j_user": config.neo4j_user,
        "neo4j_password": config.neo4j_password.get_secret_value(),
        "milvus_uri": config.milvus_uri,
        "milvus_alias": config.milvus_alias,
        "milvus_prefix": config.milvus_prefix,
        "registry_url": config.registry_url,
        "state_dir": str(config.state_dir),
        "fetch_file_roots": str(file_roots),
    }


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
        _skipped.append(SkippedTest(report.nodeid, frozenset(report.keywords), reason))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _in_ci():
        return
    forbidden = fixtures.forbidden_skips(_skipped)
    if forbidden:
        terminalreporter.section("CI: skipped tests fail the run", sep="=", red=True)
        for item in forbidden:
            terminalreporter.line(f"{item.nodeid}: {item.reason}")
        terminalreporter.line("Only tests marked `docker` or `gpu` may skip in CI.")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _in_ci():
        return
    if fixtures.forbidden_skips(_skipped) and session.exitstatus == 0:
        session.exitstatus = 1
    # pytest's own 5 ("no tests collected") is already non-zero, so CI fails on it as well.
