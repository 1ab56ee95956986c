"""The local-services tooling: generated configs, pid safety, env output, fixture resolution
and the CI skip rule — on real files and real processes, no service needed."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from pinclip.services import fixtures, manager, process
from pinclip.services.config import ServicesConfig
from pinclip.services.fixtures import SkippedTest
from pinclip.services.kafka import new_cluster_id, server_properties
from pinclip.services.maven import Artifact, pom_xml
from pinclip.services.milvus_server import config_template, etcd_config
from pinclip.services.neo4j import server_overrides


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_kafka_properties_form_a_single_node_kraft_cluster_on_loopback(tmp_path: Path) -> None:
    props = _props(server_properties("127.0.0.1", 19092, 19093, tmp_path))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == f"{props['node.id']}@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["log.dirs"] == str(tmp_path)


def test_kafka_cluster_id_has_the_storage_tool_format() -> None:
    cluster_id = new_cluster_id()
    assert len(cluster_id) == 22 and "=" not in cluster_id
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    assert new_cluster_id() != cluster_id


def test_neo4j_listens_on_bolt_only_without_auth() -> None:
    overrides = server_overrides("127.0.0.1", 17687, "64m")
    assert overrides["server.bolt.listen_address"] == "127.0.0.1:17687"
    assert overrides["server.http.enabled"] == "false"
    assert overrides["dbms.security.auth_enabled"] == "false"
    assert overrides["db.tx_log.preallocate"] == "false"  # disk stays small under test churn


def test_generated_pom_names_every_artifact() -> None:
    artifacts = [Artifact("org.apache.kafka", "kafka_2.13", "3.9.1"), Artifact("a", "b&c", "1")]
    root = ET.fromstring(pom_xml("kafka", artifacts))
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    found = [
        (d.findtext("m:groupId", namespaces=ns), d.findtext("m:artifactId", namespaces=ns))
        for d in root.iterfind("m:dependencies/m:dependency", ns)
    ]
    assert found == [("org.apache.kafka", "kafka_2.13"), ("a", "b&c")]


def test_embedded_etcd_gets_its_own_ports(tmp_path: Path) -> None:
    from milvus import MilvusServerConfig

    text = config_template(MilvusServerConfig().template_text, tmp_path / "etcd.yaml")
    assert f"  config:\n    path: {tmp_path / 'etcd.yaml'}\n  use:\n    embed: true" in text
    etcd = etcd_config(tmp_path, 41001, 41002)
    assert "listen-peer-urls: http://127.0.0.1:41002" in etcd
    assert "listen-client-urls: http://127.0.0.1:41001" in etcd


def test_env_lines_cover_every_service_and_quote_values(tmp_path: Path) -> None:
    config = ServicesConfig.model_validate({"state_dir": tmp_path, "kafka_port": 29092})
    lines = manager.env_lines(manager.build_services(config))
    assert "export PINCLIP_KAFKA_BOOTSTRAP=127.0.0.1:29092" in lines
    assert "export PINCLIP_NEO4J_URI=bolt://127.0.0.1:7687" in lines
    assert "export PINCLIP_NEO4J_PASSWORD=''" in lines
    assert "export PINCLIP_TEST_MILVUS_SERVER_URI=http://127.0.0.1:19530" in lines


def test_unknown_service_names_are_refused(tmp_path: Path) -> None:
    config = ServicesConfig.model_validate({"state_dir": tmp_path})
    with pytest.raises(manager.ServiceError, match="zookeeper"):
        manager.build_services(config, ["kafka", "zookeeper"])


def test_stop_signals_only_a_process_whose_command_line_matches(tmp_path: Path) -> None:
    marker = str(tmp_path / "marker")
    log = tmp_path / "out.log"
    child = "import time; print('ready', flush=True); time.sleep(60)"
    pid = process.spawn([sys.executable, "-c", child, marker], log, cwd=tmp_path)
    try:
        for _ in range(300):  # wait for the interpreter to be up (bounded), not a timing check
            if "ready" in log.read_text() or not process.is_alive(pid):
                break
            time.sleep(0.05)
        assert process.is_alive(pid), f"child died: {log.read_text()}"

        impostor = process.ProcessRecord(pid=pid, marker="somebody-else")
        assert process.stop(impostor) is True  # "not ours": nothing signalled
        assert process.is_alive(pid)

        ours = process.ProcessRecord(pid=pid, marker=marker)
        ours.save(tmp_path / "pid.json")
        assert process.ProcessRecord.load(tmp_path / "pid.json") == ours
        assert process.is_ours(ours), process.command_line(pid)
        assert process.stop(ours, grace_s=10) is True
        assert not process.is_alive(pid)
    finally:
        if process.is_alive(pid):
            subprocess.run(["kill", "-9", str(pid)], check=False)


def test_fixtures_prefer_environment_variables() -> None:
    env = {
        "PINCLIP_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "PINCLIP_NEO4J_URI": "bolt://127.0.0.1:2",
        "PINCLIP_NEO4J_PASSWORD": "pw",
        "PINCLIP_TEST_MILVUS_SERVER_URI": "http://127.0.0.1:3",
    }
    assert fixtures.kafka_bootstrap(env).value == "127.0.0.1:1"
    neo = fixtures.neo4j_settings(env).value
    assert (neo.uri, neo.user, neo.password) == ("bolt://127.0.0.1:2", "neo4j", "pw")
    assert fixtures.milvus_server_uri(env).value == "http://127.0.0.1:3"


@pytest.mark.parametrize(
    ("resolve", "variable"),
    [
        (fixtures.kafka_bootstrap, "PINCLIP_KAFKA_BOOTSTRAP"),
        (fixtures.neo4j_settings, "PINCLIP_NEO4J_URI"),
        (fixtures.milvus_server_uri, "PINCLIP_TEST_MILVUS_SERVER_URI"),
    ],
)
def test_without_env_or_docker_the_reason_names_what_is_missing(
    resolve: Callable[..., fixtures.Provided], variable: str
) -> None:
    with pytest.raises(fixtures.Unavailable) as info:
        resolve({}, docker=lambda: False)
    assert variable in str(info.value)
    assert "pinclip services up" in str(info.value)


def test_container_images_are_configurable() -> None:
    assert fixtures.image(fixtures.KAFKA_IMAGE_VAR, {}) == "apache/kafka:3.9.1"
    env = {fixtures.NEO4J_IMAGE_VAR: "localhost/neo4j:5.26"}
    assert fixtures.image(fixtures.NEO4J_IMAGE_VAR, env) == "localhost/neo4j:5.26"


def test_in_ci_only_docker_and_gpu_tests_may_skip() -> None:
    skipped = [
        SkippedTest("t::kafka", frozenset({"integration"}), "no Kafka"),
        SkippedTest("t::gpu", frozenset({"gpu"}), "no CUDA"),
        SkippedTest("t::docker", frozenset({"docker", "integration"}), "no engine"),
    ]
    assert [s.nodeid for s in fixtures.forbidden_skips(skipped, {})] == ["t::kafka"]
    # where an engine is provided (`pinclip engine env`), a skipped docker test is a failure
    required = fixtures.forbidden_skips(skipped, {fixtures.REQUIRE_DOCKER_VAR: "1"})
    assert [s.nodeid for s in required] == ["t::kafka", "t::docker"]


def test_milvus_waits_for_its_port_instead_of_moving() -> None:
    import socket

    from pinclip.services.milvus_server import wait_until_bindable

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert wait_until_bindable(port, timeout_s=0) is False
    assert wait_until_bindable(port, timeout_s=5) is True


def test_ports_and_state_dir_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PINCLIP_SERVICES_KAFKA_PORT", "29999")
    monkeypatch.setenv("PINCLIP_SERVICES_STATE_DIR", str(tmp_path))
    config = ServicesConfig.model_validate({})
    kafka = manager.build_services(config, ["kafka"])[0]
    assert kafka.address() == "127.0.0.1:29999"
    assert kafka.dir == tmp_path.resolve() / "kafka"


def test_cache_dir_honours_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pinclip.services.config import default_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "pinclip"


def test_wipe_removes_a_stopped_services_data(tmp_path: Path) -> None:
    config = ServicesConfig.model_validate({"state_dir": tmp_path})
    kafka = manager.build_services(config, ["kafka"])[0]
    (kafka.dir / "data").mkdir(parents=True)
    (kafka.dir / "data" / "segment.log").write_text("x")
    kafka.wipe()
    assert not kafka.dir.exists()


def test_a_private_set_gets_free_ports_and_a_state_dir_of_its_own(tmp_path: Path) -> None:
    from pinclip.services.private import PrivateServices, ephemeral_range

    services = PrivateServices(tmp_path / "private")
    config = services.config
    ports = [config.kafka_port, config.kafka_controller_port, config.neo4j_bolt_port]
    ports.append(config.milvus_port)
    assert len(set(ports)) == 4 and 9092 not in ports and 7687 not in ports
    assert 19530 not in ports
    assert all(s.dir.parent == (tmp_path / "private").resolve() for s in services.services.values())
    assert services.kafka_bootstrap == f"127.0.0.1:{config.kafka_port}"
    low, _ = ephemeral_range()
    assert all(20000 <= port < low for port in ports)  # never a client's source port


def test_the_watchdog_stops_and_wipes_the_set_of_an_owner_that_died(tmp_path: Path) -> None:
    import subprocess

    from pinclip.services.private import CONFIG_FILE, PrivateServices, watch

    root = tmp_path / "private"
    services = PrivateServices(root)
    root.mkdir()
    (root / CONFIG_FILE).write_text(services.config.model_dump_json())
    owner = subprocess.Popen(["true"])
    owner.wait()  # a dead owner: nothing of its set is running any more
    assert watch(root, owner.pid, poll_s=0.01) == 0
    assert not root.exists()


def test_the_watchdog_leaves_a_set_its_owner_tore_down(tmp_path: Path) -> None:
    import os

    from pinclip.services.private import watch

    (tmp_path / "kept").mkdir()
    assert watch(tmp_path, os.getpid(), poll_s=0.01) == 0  # no config file: torn down already
    assert (tmp_path / "kept").exists()
