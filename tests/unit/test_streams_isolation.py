"""Issue 9's defects, one regression test each, on the PinWorker with in-memory stores that
raise what the real drivers raise (the same paths run on real services in tests/e2e)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from streams_fakes import (
    HashEncoder,
    MemoryGraph,
    MemoryVectors,
    b64,
    make_worker,
    pin_record,
    png,
    worker_config,
)

from encoder.batcher import BatcherClosed
from graph_store import GraphStoreUnavailable
from streams.errors import ConfigurationError
from streams.events import DeadLetter
from streams.models import model_update_for
from streams.pipeline import SourceRecord
from streams.worker import PinWorker
from vector_store import UnknownVersion, VectorStoreUnavailable

KAFKA_MAX_REQUEST_BYTES = 1_048_576  # the producer limit a dead letter must fit


def reasons(letters: list[DeadLetter]) -> dict[int, tuple[str, str]]:
    return {d.source_offset: (d.stage, d.reason) for d in letters}


async def test_a_uri_the_url_parser_rejects_does_not_stop_its_batch(tmp_path: Path) -> None:
    worker = await make_worker(tmp_path, MemoryVectors(), graph := MemoryGraph())
    records = [
        pin_record(0, "good-1", image_b64=b64(png((1, 2, 3)))),
        pin_record(1, "idna", image_uri="http://\u00ad.example/x.png"),  # IDNA refuses it
        pin_record(2, "ipv6", image_uri="http://[::1/x.png"),  # no closing bracket
        pin_record(3, "good-2", image_b64=b64(png((4, 5, 6)))),
    ]
    outcome = await worker.handle_new_pins(records)
    assert sorted(e.pin_id for e in outcome.embedded) == ["good-1", "good-2"]
    assert sorted(graph.pins) == ["good-1", "good-2"]
    assert {offset for offset, (stage, _) in reasons(outcome.dead).items()} == {1, 2}
    assert all(d.stage in ("schema", "fetch") and d.reason for d in outcome.dead)


async def test_a_huge_garbage_record_becomes_a_dead_letter_that_fits_kafka(
    tmp_path: Path,
) -> None:
    worker = await make_worker(tmp_path, MemoryVectors(), MemoryGraph())
    garbage = bytes(range(128, 256)) * 2_000  # 256 KB of undecodable bytes: escaped 4-6x
    outcome = await worker.handle_new_pins([SourceRecord("t", 0, 7, garbage)])
    [letter] = outcome.dead
    assert (letter.stage, letter.reason) == ("parse", "bad_json")
    assert len(letter.to_json_bytes()) < KAFKA_MAX_REQUEST_BYTES // 2
    assert letter.payload_bytes == len(garbage) and letter.payload_truncated
    assert letter.payload_sha256 == hashlib.sha256(garbage).hexdigest()


@pytest.mark.parametrize(
    "created_at",
    [
        "9999-12-31T23:00:00-05:00",  # validates, overflows when converted to UTC
        "0001-01-01T00:30:00+01:00",  # the same at the other end
        "1969-12-31T23:59:59Z",  # before the epoch Milvus stores
        "{far_future}",  # a week ahead of now
    ],
)
async def test_timestamps_outside_the_sane_window_are_refused_at_parse_time(
    tmp_path: Path, created_at: str
) -> None:
    vectors, graph = MemoryVectors(), MemoryGraph()
    worker = await make_worker(tmp_path, vectors, graph)
    far_future = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    bad = pin_record(0, "bad", image_b64=b64(png((1, 1, 1))))
    value = json.loads(bad.value or b"")
    value["created_at"] = created_at.format(far_future=far_future)
    bad = SourceRecord(bad.topic, 0, 0, json.dumps(value).encode())
    good = pin_record(1, "good", image_b64=b64(png((2, 2, 2))))
    outcome = await worker.handle_new_pins([bad, good])
    assert reasons(outcome.dead) == {0: ("schema", "timestamp_out_of_range")}
    assert [e.pin_id for e in outcome.embedded] == ["good"]
    assert list(vectors.rows[1]) == ["good"]


async def test_a_refused_row_is_dead_lettered_at_once_and_an_outage_is_waited_out(
    tmp_path: Path,
) -> None:
    vectors, graph = MemoryVectors(), MemoryGraph()
    worker = await make_worker(tmp_path, vectors, graph)
    vectors.faults.queue("upsert", VectorStoreUnavailable("down"), VectorStoreUnavailable("down"))
    vectors.faults.rules.append(
        lambda method, pins: (
            ValueError("row refused")
            if method == "upsert" and any(p.pin_id == "refused" for p in pins)
            else None
        )
    )
    graph.faults.queue("upsert_pins", GraphStoreUnavailable("neo4j down after 6 attempts"))
    records = [
        pin_record(i, pin_id, image_b64=b64(png((i, i, i))))
        for i, pin_id in enumerate(["a", "refused", "b"])
    ]
    outcome = await worker.handle_new_pins(records)
    assert sorted(e.pin_id for e in outcome.embedded) == ["a", "b"]
    assert reasons(outcome.dead) == {1: ("write", "invalid_row")}
    assert sorted(vectors.rows[1]) == ["a", "b"]


async def test_an_unknown_version_at_write_time_is_dead_lettered_not_retried_forever(
    tmp_path: Path,
) -> None:
    vectors = MemoryVectors()
    worker = await make_worker(tmp_path, vectors, MemoryGraph())
    vectors.faults.rules.append(
        lambda method, _: UnknownVersion("pins_v1 was dropped") if method == "upsert" else None
    )
    outcome = await worker.handle_new_pins([pin_record(0, "p", image_b64=b64(png((3, 3, 3))))])
    assert reasons(outcome.dead) == {0: ("write", "unknown_version")}
    assert vectors.faults.calls["upsert"] == 1


async def test_a_bug_propagates_instead_of_being_dead_lettered_or_retried(tmp_path: Path) -> None:
    graph = MemoryGraph()
    worker = await make_worker(tmp_path, MemoryVectors(), graph)
    graph.faults.queue("upsert_pins", KeyError("a bug of ours"))
    with pytest.raises(KeyError):
        await worker.handle_new_pins([pin_record(0, "p", image_b64=b64(png((3, 3, 3))))])
    assert graph.faults.calls["upsert_pins"] == 1


async def test_an_encoder_swapping_under_a_request_is_retried(tmp_path: Path) -> None:
    worker = await make_worker(tmp_path, MemoryVectors(), MemoryGraph())
    HashEncoder.faults.queue("embed", BatcherClosed("encoder-v1-pin"), TimeoutError())
    outcome = await worker.handle_new_pins([pin_record(0, "p", image_b64=b64(png((5, 5, 5))))])
    assert [e.pin_id for e in outcome.embedded] == ["p"] and outcome.dead == []


async def test_a_fetch_that_raises_anything_but_a_bug_dead_letters_that_pin_only(
    tmp_path: Path,
) -> None:
    worker = await make_worker(tmp_path, MemoryVectors(), MemoryGraph())
    image = tmp_path / "ok.png"
    image.write_bytes(png((7, 7, 7)))
    fetch = worker.fetcher.fetch_pin_image

    async def flaky_host(pin: Any) -> bytes:
        if pin.pin_id == "host-down":
            raise ConnectionRefusedError("the image host is down")
        if pin.pin_id == "odd-url":
            raise UnicodeError("label too long")
        return await fetch(pin)

    worker.fetcher.fetch_pin_image = flaky_host  # type: ignore[method-assign]
    records = [
        pin_record(0, "host-down", image_uri=image.as_uri()),
        pin_record(1, "odd-url", image_uri=image.as_uri()),
        pin_record(2, "ok", image_uri=image.as_uri()),
    ]
    outcome = await worker.handle_new_pins(records)
    assert [e.pin_id for e in outcome.embedded] == ["ok"]
    assert {o: stage for o, (stage, _) in reasons(outcome.dead).items()} == {
        0: "fetch",
        1: "fetch",
    }


async def test_start_up_waits_out_a_neo4j_outage_longer_than_the_store_budget(
    tmp_path: Path,
) -> None:
    graph = MemoryGraph()
    graph.faults.queue("ensure_schema", *(GraphStoreUnavailable("down") for _ in range(5)))
    vectors = MemoryVectors()
    vectors.faults.queue("live_version", VectorStoreUnavailable("milvus starting"))
    worker = await make_worker(tmp_path, vectors, graph)
    assert worker.ready.is_set()
    assert graph.faults.calls["ensure_schema"] == 5 + 2  # 5 outages, a Milvus one, then up
    await worker.close()


async def test_a_real_configuration_error_fails_fast(tmp_path: Path) -> None:
    config = worker_config(tmp_path, registry_url=str(tmp_path / "empty"), model_version=None)
    worker = PinWorker(config, vector_store=MemoryVectors(), graph_store=MemoryGraph())
    with pytest.raises(ConfigurationError, match="no model version"):
        await worker.start()


async def test_a_model_update_waits_out_a_milvus_blip_and_switches_only_when_ready(
    tmp_path: Path,
) -> None:
    vectors = MemoryVectors()
    worker = await make_worker(tmp_path, vectors, MemoryGraph())
    seen: list[tuple[int, ...]] = []
    vectors.faults.queue("ensure_version", VectorStoreUnavailable("blip"), TimeoutError())

    def record_targets(method: str, _: object) -> None:
        if method == "ensure_version":
            seen.append(worker.models.targets())

    vectors.faults.rules.append(record_targets)
    candidate = model_update_for(worker.config.registry_url, 2, "candidate")
    outcome = await worker.handle_model_update(SourceRecord("m", 0, 0, candidate.to_json_bytes()))
    assert outcome.dead == []
    assert seen == [(1,)]  # while preparing, pins are still written to v1 only
    assert worker.models.targets() == (1, 2) and 2 in vectors.rows


async def test_a_model_update_that_cannot_be_applied_changes_nothing(tmp_path: Path) -> None:
    vectors = MemoryVectors()
    worker = await make_worker(tmp_path, vectors, MemoryGraph())
    vectors.faults.queue("ensure_version", ValueError("collection refused"))
    candidate = model_update_for(worker.config.registry_url, 2, "candidate")
    outcome = await worker.handle_model_update(SourceRecord("m", 0, 0, candidate.to_json_bytes()))
    assert reasons(outcome.dead) == {0: ("model", "value_error")}
    assert worker.models.targets() == (1,)
    elsewhere = candidate.model_copy(update={"registry_uri": "http://169.254.169.254/v2"})
    outcome = await worker.handle_model_update(SourceRecord("m", 0, 1, elsewhere.to_json_bytes()))
    assert reasons(outcome.dead) == {1: ("model", "untrusted_registry")}
    assert worker.models.targets() == (1,)


def test_secrets_stay_out_of_repr_and_the_state_file_is_private(tmp_path: Path) -> None:
    from streams.runner import WorkerProcess

    config = worker_config(tmp_path, neo4j_password="hunter2", milvus_token="root:Milvus")
    assert "hunter2" not in repr(config) and "Milvus" not in repr(config)
    assert config.metrics_host == "127.0.0.1"
    process = WorkerProcess(config)
    process.start()
    try:
        assert process.config_path.stat().st_mode & 0o777 == 0o600
    finally:
        process.kill()
    assert not process.config_path.exists()


def listening_addresses(port: int) -> set[str]:
    """Local addresses listening on `port` (Linux /proc/net/tcp: hex, little-endian)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # 0A: LISTEN
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


def test_metrics_bind_the_loopback_address_by_default() -> None:
    import socket

    from streams.metrics import serve_metrics

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert serve_metrics(port)
    assert listening_addresses(port) == {"127.0.0.1"}


def test_a_uri_in_a_log_line_never_carries_its_password() -> None:
    from streams.config import without_userinfo

    assert without_userinfo("http://root:Milvus@db:19530/x") == "http://db:19530/x"
    assert without_userinfo("var/milvus.db") == "var/milvus.db"
    assert without_userinfo("http://db:19530/a@b") == "http://db:19530/a@b"


class BrokerTopic:
    """Stands in for a Faust topic: a 1 MB record limit like Kafka's, one outage first."""

    def __init__(self, limit: int = 1_000_000) -> None:
        import aiokafka.errors

        self.errors = aiokafka.errors
        self.limit = limit
        self.sent: list[bytes] = []
        self.down = 1

    async def send(self, key: bytes | None, value: bytes) -> Any:
        if self.down:
            self.down -= 1
            raise self.errors.KafkaConnectionError("broker restarting")
        if len(value) > self.limit:
            raise self.errors.MessageSizeTooLargeError()
        self.sent.append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_a_dead_letter_the_broker_refuses_as_too_large_is_sent_without_payload() -> None:
    from streams.app import deliver
    from streams.pipeline import dead_letter

    letter = dead_letter(SourceRecord("t", 0, 3, b"\xff" * 60_000), "parse", "bad_json")
    topic = BrokerTopic(limit=100_000)  # a broker configured below our 64 KiB-payload letters
    await deliver(topic, None, letter)
    [sent] = topic.sent
    bare = DeadLetter.model_validate_json(sent)
    assert bare.payload == "" and bare.payload_truncated
    assert bare.payload_sha256 == letter.payload_sha256 and bare.payload_bytes == 60_000
