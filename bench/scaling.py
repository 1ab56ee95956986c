"""Scaling: pins/s of 1, 2 and 4 worker processes on one machine, on a partitioned backlog.

    python bench/scaling.py                                   # backfill and live, 1 2 4 workers
    python bench/scaling.py --mode backfill --workers 1 2 --pins 2000   # quicker

On real Kafka + Neo4j + the Milvus server (PINCLIP_* / `pinclip services env`):
- backfill: a catalogue of `--pins` pins in Neo4j (real 256 px JPEG/PNG files), re-embedded by
  `pinclip.reembed.ReembedGroup` with W member processes into a fresh version each time;
- live: a backlog of `--pins` NewPin events on `--partitions` partitions, drained by W stream
  workers (`python -m pinclip.worker`) of one consumer group.
Each time is wall clock from the start of the W processes (model load included, as a user
would see it) to the last pin written. The model is the chosen config with random weights
(speed does not depend on them). Prints pins/s per worker count, the speed-up over one worker and
the ratio to linear; writes JSON under bench/results/. The machine's cores bound the curve:
read it beside `nproc`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from pydantic import SecretStr  # noqa: E402

from bench.streambench.load import export, image_policy, image_pool  # noqa: E402
from graph_store import GraphStore, PinNode  # noqa: E402
from pinclip.reembed.group import GroupOptions, ReembedGroup  # noqa: E402
from streams.config import Topics, WorkerConfig  # noqa: E402
from streams.events import NewPin  # noqa: E402
from streams.producer import EventProducer  # noqa: E402
from streams.runner import StreamProgress, WorkerProcess  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402
from vector_store import VectorStore  # noqa: E402

RESULTS = _HERE / "results"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", nargs="+", default=["backfill", "live"],
                        choices=["backfill", "live"])  # fmt: skip
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--pins", type=int, default=3000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--item-size", type=int, default=128, help="pins per backfill item")
    parser.add_argument("--config", default="default", choices=["default", "tiny"])
    env = os.environ.get
    parser.add_argument("--kafka", default=env("PINCLIP_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--neo4j", default=env("PINCLIP_NEO4J_URI", "bolt://127.0.0.1:7687"))
    parser.add_argument(
        "--milvus", default=env("PINCLIP_TEST_MILVUS_SERVER_URI", "http://127.0.0.1:19530")
    )
    return parser.parse_args()


def config_for(args: argparse.Namespace, tag: str, tmp: Path, images: list[str]) -> WorkerConfig:
    return WorkerConfig(
        kafka_bootstrap=args.kafka,
        topics=Topics.with_prefix(tag),
        consumer_group=tag,
        topic_partitions=args.partitions,
        session_timeout_s=10.0,
        neo4j_uri=args.neo4j,
        neo4j_password=SecretStr(os.environ.get("PINCLIP_NEO4J_PASSWORD", "")),
        milvus_uri=args.milvus,
        milvus_alias=f"{tag}_pins",
        milvus_prefix=f"{tag}_v",
        registry_url=str(tmp / "registry"),
        fetch=image_policy(images),
        state_dir=tmp / f"state-{tag}",
        metrics_port=None,
        progress_interval_s=0,
    )


def seed(graph: GraphStore, prefix: str, n: int, images: list[str]) -> None:
    now = datetime.now(UTC)
    graph.upsert_pins(
        [PinNode(f"{prefix}p{i:07d}", f"pin {i}", "", images[i % len(images)], now, "u")
         for i in range(n)]
    )  # fmt: skip


def run_backfill(args: argparse.Namespace, config: WorkerConfig, prefix: str, workers: int,
                 dim: int) -> float:  # fmt: skip
    graph = GraphStore(config.neo4j_uri, config.neo4j_user,
                       config.neo4j_password.get_secret_value())  # fmt: skip
    vectors = VectorStore(config.milvus_uri, alias=config.milvus_alias, dim=dim,
                          prefix=config.milvus_prefix)  # fmt: skip
    try:
        options = GroupOptions(workers=workers, item_size=args.item_size, id_prefix=prefix,
                               progress=False, loglevel="WARNING")  # fmt: skip
        started = time.monotonic()
        report = ReembedGroup(config, 1, graph, vectors, options).run()
        elapsed = time.monotonic() - started
        assert report.embedded == args.pins, report
        return elapsed
    finally:
        vectors.purge()
        vectors.close()
        graph.close()


def run_live(args: argparse.Namespace, config: WorkerConfig, prefix: str, workers: int,
             images: list[str]) -> float:  # fmt: skip
    ensure_topics(config)
    now = datetime.now(UTC)
    pins = [NewPin(pin_id=f"{prefix}l{i:07d}", board_id=f"{prefix}b{i % 50}", user_id="u",
                   title=f"pin {i}", image_uri=images[i % len(images)], created_at=now)
            for i in range(args.pins)]  # fmt: skip
    with EventProducer(config.kafka_bootstrap, config.topics) as producer:
        producer.send_many(pins)
    progress = StreamProgress(config)
    started = time.monotonic()
    members = [WorkerProcess(config, log_path=config.state_dir / f"w{i}.log") for i in
               range(workers)]  # fmt: skip
    for i, member in enumerate(members):
        member.config_path = config.state_dir / f"worker-{i}.json"
        member.start()
    try:
        ids = {p.pin_id for p in pins}
        assert progress.wait_until(lambda p: ids <= p.embedded.keys(), 1800), "live: timed out"
        return time.monotonic() - started
    finally:
        for member in members:
            member.stop()
        vectors = VectorStore(config.milvus_uri, alias=config.milvus_alias,
                              prefix=config.milvus_prefix)  # fmt: skip
        vectors.purge()
        vectors.close()


def table(rows: list[dict[str, float | int | str]]) -> str:
    lines = ["| mode | workers | pins | seconds | pins/s | speed-up | ratio to linear |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in rows:
        cells = (
            r["mode"],
            r["workers"],
            r["pins"],
            f"{r['seconds']:.1f}",
            f"{r['pins_per_s']:.1f}",
            f"{r['speedup']:.2f}x",
            f"{r['linear']:.2f}",
        )
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="scaling-"))
    tag = "scale" + uuid.uuid4().hex[:6]
    rows: list[dict[str, float | int | str]] = []
    graph = GraphStore(args.neo4j, "neo4j", os.environ.get("PINCLIP_NEO4J_PASSWORD", ""))
    try:
        dim = export(args.config, tmp / "registry")
        images = image_pool(tmp / "images")
        seed(graph, f"{tag}-", args.pins, images)
        for mode in args.mode:
            one: float | None = None
            for workers in args.workers:
                run_tag = f"{tag}{mode[0]}{workers}"
                config = config_for(args, run_tag, tmp, images)
                print(f"{mode}: {workers} worker(s), {args.pins} pins …", flush=True)
                if mode == "backfill":
                    seconds = run_backfill(args, config, f"{tag}-", workers, dim)
                else:
                    seconds = run_live(args, config, f"{run_tag}-", workers, images)
                rate = args.pins / seconds
                one = rate if workers == 1 or one is None else one
                rows.append({"mode": mode, "workers": workers, "pins": args.pins,
                             "seconds": seconds, "pins_per_s": rate, "speedup": rate / one,
                             "linear": rate / (one * workers)})  # fmt: skip
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    finally:
        graph.delete_by_prefix(f"{tag}")
        graph.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmachine: {platform.node() and platform.machine()}, {os.cpu_count()} cores; "
          f"model config {args.config}; {args.partitions} partitions")  # fmt: skip
    print(table(rows))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"scaling-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    print(f"written: {out.relative_to(_HERE.parent)}")


if __name__ == "__main__":
    main()
