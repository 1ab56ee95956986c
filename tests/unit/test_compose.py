"""compose/dev.yml stays runnable and in step with the settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pinclip.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "compose" / "dev.yml"
STORES = ("kafka", "neo4j", "milvus")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_every_service_has_an_image_or_a_build(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services, "no services"
    missing = [name for name, svc in services.items() if not (svc.get("image") or svc.get("build"))]
    assert missing == []


@pytest.mark.parametrize("store", STORES)
def test_each_store_has_a_healthcheck(compose: dict[str, Any], store: str) -> None:
    check = compose["services"][store].get("healthcheck", {})
    assert check.get("test"), f"{store} has no healthcheck"


def test_milvus_runs_standalone_on_its_etcd_and_minio(compose: dict[str, Any]) -> None:
    milvus = compose["services"]["milvus"]
    assert set(milvus["depends_on"]) == {"etcd", "minio"}
    assert all(dep["condition"] == "service_healthy" for dep in milvus["depends_on"].values())


def test_store_data_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    named = set(compose["volumes"])
    for store in STORES:
        sources = {v.split(":", 1)[0] for v in compose["services"][store].get("volumes", [])}
        assert sources and sources <= named, f"{store} volumes {sources} are not named volumes"


def test_versions_match_the_local_services(compose: dict[str, Any]) -> None:
    """The same Kafka and Neo4j lines as `pinclip services` (see ServicesConfig defaults)."""
    assert ":3.9" in compose["services"]["kafka"]["image"]
    assert ":5.26" in compose["services"]["neo4j"]["image"]


def test_every_pinclip_variable_is_a_real_setting() -> None:
    """Scans the raw text, comments included: the commented app services must stay true too."""
    names = set(re.findall(r"\bPINCLIP_([A-Z0-9_]+)", COMPOSE.read_text()))
    assert names, "expected the app-service template to name PINCLIP_ settings"
    fields = {name.upper() for name in Settings.model_fields}
    assert sorted(names - fields) == []


def test_ports_are_published_on_loopback_only(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_app_services_run_real_pinclip_commands(compose: dict[str, Any]) -> None:
    """An app service appears only when its command exists: every `pinclip X` must be registered."""
    import typer.main

    from pinclip import cli

    cli._register()
    group = typer.main.get_command(cli.app)
    known = set(group.commands)  # type: ignore[attr-defined]
    used: set[str] = set()
    for svc in compose["services"].values():
        command = svc.get("command")
        text = " ".join(command) if isinstance(command, list) else str(command or "")
        used.update(re.findall(r"\bpinclip ([a-z-]+)", text))
    assert {"worker", "api", "retrain"} <= used
    assert sorted(used - known) == []
