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


APP = ("bootstrap", "worker", "api", "retrain", "demo")


def test_published_ports_are_configurable_loopback_ports(compose: dict[str, Any]) -> None:
    """Fixed host ports would clash with local services and with a second stack."""
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            pattern = r"127\.0\.0\.1:\$\{[A-Z0-9_]+_HOST_PORT:-\d+\}:\d+"
            assert re.fullmatch(pattern, str(port)), f"{name}: {port}"


def test_workers_scale(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "ports" not in worker and "container_name" not in worker
    assert worker["restart"] == "on-failure"


def test_each_app_image_is_built_by_one_service_and_never_pulled(compose: dict[str, Any]) -> None:
    services = compose["services"]
    builders = {services[n]["image"]: n for n in APP if "build" in services[n]}
    assert len(builders) == 2, builders  # the serving and the trainer image
    for name in APP:
        svc = services[name]
        expected = "build" if "build" in svc else "never"
        assert svc.get("pull_policy") == expected, name
        assert svc["image"] in builders, f"{name} uses an image no service builds"


def test_serving_and_trainer_images_go_where_they_belong(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("worker", "api", "demo"):
        assert "SERVING_IMAGE" in services[name]["image"]
    for name in ("bootstrap", "retrain"):
        assert "TRAINER_IMAGE" in services[name]["image"]
    assert services["worker"]["build"]["target"] == "serving"
    assert services["bootstrap"]["build"]["target"] == "trainer"


def test_retrain_waits_for_the_graph_and_restarts(compose: dict[str, Any]) -> None:
    retrain = compose["services"]["retrain"]
    command = " ".join(retrain["command"])
    assert command.index("pinclip wait-graph") < command.index("pinclip retrain")
    assert retrain["restart"] == "on-failure"


def test_retrain_backfills_through_the_re_embed_group(compose: dict[str, Any]) -> None:
    """The round's backfill runs as a consumer group (pinclip.reembed), not in one process:
    the command line, with compose's defaults filled in, parses with --workers >= 1."""
    import typer.main

    from pinclip import cli

    command = " ".join(compose["services"]["retrain"]["command"])
    line = command[command.index("pinclip retrain") :].split("&&")[0]
    line = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", line)  # compose's own defaults
    argv = line.split()[2:]
    cli._register()
    retrain = typer.main.get_command(cli.app).commands["retrain"]  # type: ignore[attr-defined]
    assert retrain.make_context("retrain", argv).params["workers"] >= 1


def test_app_waits_for_bootstrap_and_the_stores(compose: dict[str, Any]) -> None:
    deps = compose["services"]["worker"]["depends_on"]
    assert deps["bootstrap"]["condition"] == "service_completed_successfully"
    assert all(deps[s]["condition"] == "service_healthy" for s in STORES)


def test_demo_is_a_profile(compose: dict[str, Any]) -> None:
    demo = compose["services"]["demo"]
    assert demo["profiles"] == ["demo"]
    assert "stream-sample" in demo["command"]
