"""compose/k8s stays deployable: what each manifest asks of the code is what the code offers.

No cluster runs here, so these checks read the manifests against the real command line, the
settings, the API's open paths and compose/Dockerfile's targets: a renamed option, setting, port
or image target fails here instead of in someone's cluster."""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from pinclip.api.security import PUBLIC_PATHS
from pinclip.cli import _register, app
from pinclip.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "compose" / "k8s"
BACKFILL = K8S / "backfill" / "backfill.yaml"
SECRET_ENV = {
    f"PINCLIP_{n.upper()}"
    for n, f in Settings.model_fields.items()
    if "Secret" in str(f.annotation)
}


def _documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _render_backfill(version: int = 7, workers: int = 5) -> list[dict[str, Any]]:
    # string.Template is envsubst's syntax; substitute() fails on a placeholder left unset.
    text = string.Template(BACKFILL.read_text()).substitute(VERSION=version, WORKERS=workers)
    return _documents(text)


def _applied() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [
        doc for name in kustomization["resources"] for doc in _documents((K8S / name).read_text())
    ]


def _all() -> list[dict[str, Any]]:
    return _applied() + _render_backfill()


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in {"Deployment", "Job"}:
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def _containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, spec in _pod_specs(docs):
        for container in spec.get("initContainers", []) + spec["containers"]:
            yield f"{name}/{container['name']}", container


def _settings_map() -> dict[str, str]:
    return dict(_by_kind(_applied(), "ConfigMap")["pinclip-settings"]["data"])


def test_kustomization_applies_every_manifest_but_the_backfill_template() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    assert {d["kind"] for d in _applied()} >= {"ConfigMap", "Deployment", "Job", "ScaledObject"}


def test_every_setting_named_is_a_real_setting_and_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = {f"PINCLIP_{name.upper()}" for name in Settings.model_fields}
    named = set(
        re.findall(r"\bPINCLIP_[A-Z0-9_]+", "".join(p.read_text() for p in K8S.rglob("*.yaml")))
    )
    assert named and sorted(named - fields) == []
    env = _settings_map()
    for _, container in _containers(_all()):
        env.update({e["name"]: e["value"] for e in container.get("env", [])})
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.kafka_bootstrap == env["PINCLIP_KAFKA_BOOTSTRAP"]
    assert settings.topic_partitions == int(env["PINCLIP_TOPIC_PARTITIONS"])


def test_secrets_come_from_the_secret_never_the_config_map() -> None:
    assert {"PINCLIP_NEO4J_PASSWORD", "PINCLIP_MILVUS_TOKEN", "PINCLIP_API_KEY"} <= SECRET_ENV
    assert sorted(SECRET_ENV & set(_settings_map())) == []
    for where, container in _containers(_all()):
        assert sorted(SECRET_ENV & {e["name"] for e in container.get("env", [])}) == [], where
        refs = container["envFrom"]
        assert {"configMapRef": {"name": "pinclip-settings"}} in refs, where
        assert {"secretRef": {"name": "pinclip-secrets"}} in refs, where


def _parse(argv: list[str]) -> Any:
    """Parses argv as `pinclip` would, without running anything: unknown commands, options or
    values of the wrong type raise usage errors (a context of Typer's own click fork)."""
    _register()
    root = typer.main.get_command(app)
    name, *rest = argv
    command = root.commands.get(name)  # type: ignore[attr-defined]
    assert command is not None, f"pinclip has no command {name!r}"
    return command.make_context(name, rest)


def test_every_command_is_a_real_pinclip_command_line() -> None:
    seen = set()
    for where, container in _containers(_all()):
        argv = container["command"]
        assert argv[0] == "pinclip", f"{where} runs {argv[0]!r}, not the pinclip command"
        _parse(argv[1:])
        seen.add(argv[1])
    assert seen >= {"worker", "api", "retrain", "backfill", "backfill-worker", "bootstrap"}


def test_images_are_the_dockerfile_targets_and_serving_pods_carry_no_trainer() -> None:
    targets = set(
        re.findall(r"^FROM .* AS (\S+)$", (ROOT / "compose/Dockerfile").read_text(), re.M)
    )
    images = yaml.safe_load((K8S / "kustomization.yaml").read_text())["images"]
    assert [i["name"] for i in images] == ["pinclip-stream"]
    for where, container in _containers(_all()):
        repo, tag = container["image"].split(":")
        assert repo == "pinclip-stream" and tag in targets, where
        if container["command"][1] in {"worker", "api"}:
            assert tag == "serving", f"{where} should run the serving image (no torch)"


def test_ports_and_probes_match_the_settings_and_the_open_paths() -> None:
    env = _settings_map()
    assert env["PINCLIP_API_HOST"] == env["PINCLIP_METRICS_HOST"] == "0.0.0.0"
    api = _by_kind(_applied(), "Deployment")["pinclip-api"]["spec"]["template"]["spec"]
    (container,) = api["containers"]
    assert [p["containerPort"] for p in container["ports"]] == [int(env["PINCLIP_API_PORT"])]
    for probe in ("readinessProbe", "livenessProbe"):
        # A probe on a keyed path would answer 401 once PINCLIP_API_KEY is set.
        assert container[probe]["httpGet"]["path"] in PUBLIC_PATHS
    worker = _by_kind(_applied(), "Deployment")["pinclip-worker"]["spec"]["template"]["spec"]
    (container,) = worker["containers"]
    port = {e["name"]: e["value"] for e in container["env"]}["PINCLIP_METRICS_PORT"]
    assert [p["containerPort"] for p in container["ports"]] == [int(port)]
    service = _by_kind(_applied(), "Service")["pinclip-api"]
    assert service["spec"]["selector"] == api_labels()


def api_labels() -> dict[str, str]:
    api = _by_kind(_applied(), "Deployment")["pinclip-api"]
    return dict(api["spec"]["template"]["metadata"]["labels"])


def test_each_deployment_selects_its_own_pods() -> None:
    for name, deployment in _by_kind(_applied(), "Deployment").items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), name


def test_the_worker_group_is_sized_by_its_own_lag_within_the_partitions() -> None:
    env = _settings_map()
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    (scaler,) = _by_kind(_applied(), "ScaledObject").values()
    assert scaler["spec"]["scaleTargetRef"]["name"] in _by_kind(_applied(), "Deployment")
    assert scaler["spec"]["scaleTargetRef"]["name"] == "pinclip-worker"
    assert 1 <= scaler["spec"]["minReplicaCount"] <= scaler["spec"]["maxReplicaCount"]
    assert scaler["spec"]["maxReplicaCount"] <= int(env["PINCLIP_TOPIC_PARTITIONS"])
    triggers = [t["metadata"] for t in scaler["spec"]["triggers"] if t["type"] == "kafka"]
    assert {t["topic"] for t in triggers} == {settings.topic_created, settings.topic_repinned}
    for trigger in triggers:
        assert trigger["consumerGroup"] == env["PINCLIP_CONSUMER_GROUP"]
        assert trigger["bootstrapServers"] == env["PINCLIP_KAFKA_BOOTSTRAP"]
        assert int(trigger["lagThreshold"]) > 0


@pytest.mark.parametrize(("version", "workers"), [(2, 1), (7, 5), (31, 24)])
def test_backfill_template_renders_one_coordinator_and_a_group_of_workers(
    version: int, workers: int
) -> None:
    jobs = _by_kind(_render_backfill(version, workers), "Job")
    coordinator = jobs[f"pinclip-backfill-v{version}"]["spec"]
    group = jobs[f"pinclip-backfill-workers-v{version}"]["spec"]
    (planner,) = coordinator["template"]["spec"]["containers"]
    options = _parse(planner["command"][1:]).params
    assert (options["version"], options["workers"]) == (version, 0)  # plans; the group embeds
    assert group["parallelism"] == workers and "completions" not in group  # a work queue
    (member,) = group["template"]["spec"]["containers"]
    assert _parse(member["command"][1:]).params["version"] == version
    for job in (coordinator, group):
        assert job["template"]["spec"]["restartPolicy"] == "OnFailure"  # a killed pod is redone


def test_retrain_runs_alone_and_backfills_through_the_group() -> None:
    retrain = _by_kind(_applied(), "Deployment")["pinclip-retrain"]["spec"]
    assert retrain["replicas"] == 1 and retrain["strategy"]["type"] == "Recreate"
    (container,) = retrain["template"]["spec"]["containers"]
    params = _parse(container["command"][1:]).params
    assert params["every"] and params["workers"] >= 1
