"""Settings: one place, PINCLIP_ prefix, secrets never printed, defaults that work locally."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydantic import SecretStr

from pinclip.factory import StoreConfig
from pinclip.settings import Settings
from streams import defaults
from streams.config import Topics, WorkerConfig
from vector_store.naming import VersionNaming


def load() -> Settings:
    """Settings as the app reads them: from the environment and .env."""
    return Settings()  # type: ignore[call-arg]  # (mypy without the pydantic plugin)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer .env or exported PINCLIP_ variable may leak into these tests."""
    monkeypatch.chdir(tmp_path)
    import os

    for key in list(os.environ):
        if key.startswith("PINCLIP_"):
            monkeypatch.delenv(key)


def test_environment_variables_with_the_prefix_override_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PINCLIP_KAFKA_BOOTSTRAP", "broker-a:9092,broker-b:9092")
    monkeypatch.setenv("PINCLIP_MAX_BATCH", "7")
    monkeypatch.setenv("PINCLIP_LOG_JSON", "1")
    settings = load()
    assert settings.kafka_bootstrap == "broker-a:9092,broker-b:9092"
    assert settings.max_batch == 7
    assert settings.log_json is True


def test_variables_without_the_prefix_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "elsewhere:9092")
    assert load().kafka_bootstrap == "127.0.0.1:9092"


def test_a_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PINCLIP_NEO4J_URI=bolt://graph:7687\n")
    assert load().neo4j_uri == "bolt://graph:7687"


def test_secrets_are_secret_and_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINCLIP_NEO4J_PASSWORD", "hunter2")
    monkeypatch.setenv("PINCLIP_MILVUS_TOKEN", "root:Milvus")
    settings = load()
    assert isinstance(settings.neo4j_password, SecretStr)
    assert isinstance(settings.milvus_token, SecretStr)
    assert settings.neo4j_password.get_secret_value() == "hunter2"
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert "hunter2" not in shown
    assert "root:Milvus" not in shown


def test_every_secret_looking_field_is_a_secret() -> None:
    secretish = [
        name
        for name in Settings.model_fields
        if any(word in name for word in ("password", "token", "secret", "key"))
        and not name.endswith("_header")  # the *name* of the header that carries a key
    ]
    assert secretish, "expected at least the Neo4j password and Milvus token"
    for name in secretish:
        assert Settings.model_fields[name].annotation is SecretStr, name


def test_defaults_run_locally_without_any_server_config() -> None:
    settings = load()
    assert settings.kafka_bootstrap.startswith("127.0.0.1:")
    assert settings.neo4j_uri.startswith("bolt://127.0.0.1:")
    # the default Milvus is milvus-lite embedded: a local path, not a server URL
    assert "://" not in settings.milvus_uri and settings.milvus_uri.endswith(".db")
    assert settings.milvus_consistency == "Strong"
    assert settings.api_host == "127.0.0.1"
    assert settings.max_batch > 0 and settings.max_delay_ms > 0


def test_every_setting_is_documented() -> None:
    undocumented = [n for n, f in Settings.model_fields.items() if not f.description]
    assert undocumented == []


def _same_named_defaults(config_type: type) -> dict[str, tuple[object, object]]:
    """Field → (Settings default, config default) for every field both have."""
    settings = Settings.model_fields
    found = {}
    for field in dataclasses.fields(config_type):
        if field.name in settings and field.default is not dataclasses.MISSING:
            default = settings[field.name].default
            if isinstance(default, SecretStr):
                default = default.get_secret_value()
            found[field.name] = (default, field.default)
    return found


@pytest.mark.parametrize("config_type", [WorkerConfig, StoreConfig])
def test_settings_and_configs_share_their_defaults(config_type: type) -> None:
    pairs = _same_named_defaults(config_type)
    assert {"milvus_prefix", "milvus_alias", "neo4j_uri", "registry_url"} <= set(pairs)
    assert {name: s for name, (s, c) in pairs.items() if s != c} == {}


def test_default_settings_name_the_default_topics() -> None:
    assert WorkerConfig.from_settings(load()).topics == Topics()


def test_each_default_is_written_once() -> None:
    """The deployment defaults appear as literals only in streams/defaults.py (and the
    vector store's own naming, which must agree)."""
    assert (VersionNaming.prefix, VersionNaming.alias) == (
        defaults.MILVUS_PREFIX,
        defaults.MILVUS_ALIAS,
    )
    repo = Path(__file__).resolve().parents[2]
    literals = [defaults.KAFKA_BOOTSTRAP, defaults.NEO4J_URI, defaults.REGISTRY_URL]
    literals += [defaults.MILVUS_PREFIX, defaults.CONSUMER_GROUP, defaults.TOPIC_CREATED]
    packages = ["pinclip", "streams", "encoder", "graph_store", "vector_store", "trainer"]
    where: dict[str, list[str]] = {}
    for package in packages:
        for path in (repo / package).rglob("*.py"):
            text = path.read_text()
            for literal in literals:
                if f'"{literal}"' in text:
                    where.setdefault(literal, []).append(str(path.relative_to(repo)))
    allowed = {"streams/defaults.py", "vector_store/naming.py"}
    assert {k: v for k, v in where.items() if set(v) - allowed} == {}
