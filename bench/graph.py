"""Benchmark graph_store on a generated Pin–Board graph: write throughput and neighbor latency.

One command:  .venv/bin/python bench/graph.py            (defaults: 100k pins, 10k boards,
500k saves; a few minutes on a 2-core machine)   --pins/--boards/--saves to resize.

Board popularity is Zipf-like (board of rank r gets weight r^-s), so a few giant boards hold
thousands of pins — the case the per-board cap exists for. Every pin gets one creation save,
the rest are spread over pins uniformly. All ids carry a unique prefix that is deleted at the end
(`--keep` leaves the data). Prints a table and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from graph_store import BipartiteGraph, GraphStore, PinNode, Save, WalkParams, walk_neighbors
from pinclip.logging import configure_logging
from pinclip.settings import get_settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class DriverRetryCounter(logging.Handler):
    """Counts the driver's "will be retried" warnings: a non-zero count means the server was
    unavailable or contended during a phase, and that phase's latencies include the waits."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "will be retried" in record.getMessage():
            self.count += 1


RETRIES = DriverRetryCounter()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--pins", type=int, default=100_000)
    parser.add_argument("--boards", type=int, default=10_000)
    parser.add_argument("--saves", type=int, default=500_000)
    parser.add_argument("--zipf", type=float, default=0.8, help="board popularity exponent s")
    parser.add_argument("--write-batch", type=int, default=2000, help="rows per write transaction")
    parser.add_argument("--queries", type=int, default=300, help="single-pin queries per kind")
    parser.add_argument("--batches", type=int, default=20, help="batched queries per kind")
    parser.add_argument("--batch-pins", type=int, default=64, help="pins per batched query")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--board-cap", type=int, default=200)
    parser.add_argument("--num-walks", type=int, default=64)
    parser.add_argument("--walk-length", type=int, default=3)
    parser.add_argument("--restart-prob", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="do not delete the generated data")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    return parser.parse_args(argv)


def generate(args: argparse.Namespace) -> tuple[list[PinNode], list[Save], np.ndarray]:
    """Pins, save events and each board's number of distinct pins (for the report)."""
    rng = np.random.default_rng(args.seed)
    prefix = args.prefix
    pins = [
        PinNode(
            pin_id=f"{prefix}p{i:07d}",
            title=f"pin {i}",
            description=f"generated pin number {i}",
            image_uri=f"file:///bench/{i}.jpg",
            created_at=T0 + timedelta(seconds=i),
            user_id=f"{prefix}u{i % 20_000:05d}",
            is_ad=bool(i % 50 == 0),
        )
        for i in range(args.pins)
    ]
    weights = np.arange(1, args.boards + 1, dtype=np.float64) ** -args.zipf
    weights /= weights.sum()
    boards = rng.choice(args.boards, size=args.saves, p=weights)
    pin_idx = np.concatenate(
        [
            np.arange(min(args.pins, args.saves)),
            rng.integers(0, args.pins, max(0, args.saves - args.pins)),
        ]
    )
    users = rng.integers(0, 20_000, size=args.saves)
    saves = [
        Save(
            f"{prefix}p{p:07d}",
            f"{prefix}b{b:05d}",
            f"{prefix}u{u:05d}",
            T0 + timedelta(seconds=args.pins + n),
        )
        for n, (p, b, u) in enumerate(
            zip(pin_idx.tolist(), boards.tolist(), users.tolist(), strict=True)
        )
    ]
    edges = np.unique(pin_idx.astype(np.int64) * args.boards + boards)
    board_sizes = np.bincount(edges % args.boards, minlength=args.boards)
    return pins, saves, board_sizes


def timed_batches(
    items: Sequence[Any], size: int, write: Callable[[Sequence[Any]], Any]
) -> dict[str, float]:
    retries_before = RETRIES.count
    latencies = []
    started = time.perf_counter()
    for start in range(0, len(items), size):
        t = time.perf_counter()
        write(items[start : start + size])
        latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - started
    return {
        "rows": len(items),
        "seconds": elapsed,
        "rows_per_s": len(items) / elapsed,
        "batch_p50_ms": 1000 * statistics.median(latencies),
        "batch_p99_ms": 1000 * float(np.percentile(latencies, 99)),
        "driver_retries": RETRIES.count - retries_before,
    }


def timed_queries(calls: Sequence[Callable[[], Any]], pins_per_call: int) -> dict[str, float]:
    retries_before = RETRIES.count
    latencies = []
    for call in calls:
        t = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t)
    p50 = statistics.median(latencies)
    return {
        "queries": len(calls),
        "pins_per_query": pins_per_call,
        "p50_ms": 1000 * p50,
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
        "pins_per_s_at_p50": pins_per_call / p50,
        "driver_retries": RETRIES.count - retries_before,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = get_settings()
    store = GraphStore(
        settings.neo4j_uri,
        settings.neo4j_user,
        settings.neo4j_password.get_secret_value(),
        settings.neo4j_database,
        batch_size=args.write_batch,
        board_cap=args.board_cap,
    )
    store.ensure_schema()
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    try:
        t = time.perf_counter()
        pins, saves, board_sizes = generate(args)
        report["generate_s"] = time.perf_counter() - t
        report["graph"] = {
            "pins": len(pins),
            "boards_used": int((board_sizes > 0).sum()),
            "save_events": len(saves),
            "edges": int(board_sizes.sum()),
            "board_size_max": int(board_sizes.max()),
            "board_size_p50": float(np.median(board_sizes[board_sizes > 0])),
            "board_size_p99": float(np.percentile(board_sizes[board_sizes > 0], 99)),
        }
        print(f"graph: {report['graph']}", file=sys.stderr)

        writes = report["writes"] = {}
        writes["upsert_pins"] = timed_batches(pins, args.write_batch, store.upsert_pins)
        print(f"upsert_pins: {writes['upsert_pins']['rows_per_s']:.0f} rows/s", file=sys.stderr)
        writes["add_saves"] = timed_batches(saves, args.write_batch, store.add_saves)
        print(f"add_saves: {writes['add_saves']['rows_per_s']:.0f} rows/s", file=sys.stderr)
        replay = saves[: args.write_batch]
        before = (store.count_pins(id_prefix=args.prefix), store.count_saves(id_prefix=args.prefix))
        writes["add_saves_replay"] = timed_batches(replay, args.write_batch, store.add_saves)
        after = (store.count_pins(id_prefix=args.prefix), store.count_saves(id_prefix=args.prefix))
        report["counts"] = {
            "pins": after[0],
            "edges": after[1],
            "replay_changed_counts": before != after,
        }

        rng = np.random.default_rng(args.seed + 1)
        sample = [pins[i].pin_id for i in rng.integers(0, len(pins), args.queries)]
        batches = [
            [pins[i].pin_id for i in rng.integers(0, len(pins), args.batch_pins)]
            for _ in range(args.batches)
        ]
        co_board = partial(store.co_board_neighbors_batch, k=args.k)
        walks = partial(
            store.random_walk_neighbors,
            num_walks=args.num_walks,
            walk_length=args.walk_length,
            restart_prob=args.restart_prob,
            top_k=args.k,
        )
        q = report["queries"] = {}
        q["co_board"] = timed_queries([partial(co_board, [p]) for p in sample], 1)
        q["co_board_batch"] = timed_queries(
            [partial(co_board, b) for b in batches], args.batch_pins
        )
        single_walks = [partial(walks, [p]) for p in sample[: args.queries // 2]]
        q["random_walk"] = timed_queries(single_walks, 1)
        q["random_walk_batch"] = timed_queries(
            [partial(walks, b) for b in batches], args.batch_pins
        )
        shared = BipartiteGraph()  # one cache for all batches, as a training epoch would use it
        q["random_walk_batch_cached"] = timed_queries(
            [partial(walks, b, cache=shared) for b in batches], args.batch_pins
        )
        print("queries done", file=sys.stderr)

        t = time.perf_counter()
        exported_pins = sum(
            len(page) for page in store.iter_pins(page_size=5000, id_prefix=args.prefix)
        )
        pins_s = time.perf_counter() - t
        t = time.perf_counter()
        pairs = [
            (edge.pin_id, edge.board_id)
            for page in store.iter_saves(page_size=10000, id_prefix=args.prefix)
            for edge in page
        ]
        edges_s = time.perf_counter() - t
        report["export"] = {
            "pins": exported_pins,
            "pins_per_s": exported_pins / pins_s,
            "edges": len(pairs),
            "edges_per_s": len(pairs) / edges_s,
        }

        # The trainer's alternative: export once, then walk in memory (graph_store.walks).
        t = time.perf_counter()
        graph = BipartiteGraph.from_saves(pairs)
        report["export"]["in_memory_graph_build_s"] = time.perf_counter() - t
        params = WalkParams(args.num_walks, args.walk_length, args.restart_prob, args.k)
        q["random_walk_batch_in_memory"] = timed_queries(
            [partial(walk_neighbors, graph, b, params, 0) for b in batches], args.batch_pins
        )
    finally:
        if not args.keep:
            t = time.perf_counter()
            report["cleanup_deleted_nodes"] = store.delete_by_prefix(args.prefix)
            report["cleanup_s"] = time.perf_counter() - t
        store.close()
    return report


def print_table(report: dict[str, Any]) -> None:
    g = report["graph"]
    print(
        f"\ngraph: {g['pins']} pins, {g['boards_used']} boards, {g['save_events']} save events "
        f"-> {g['edges']} edges; board size p50 {g['board_size_p50']:.0f}, "
        f"p99 {g['board_size_p99']:.0f}, max {g['board_size_max']}"
    )
    print(
        f"\n{'write':<18}{'rows':>9}{'rows/s':>10}{'batch p50 ms':>14}{'batch p99 ms':>14}"
        f"{'retries':>9}"
    )
    for name, w in report["writes"].items():
        print(
            f"{name:<18}{w['rows']:>9}{w['rows_per_s']:>10.0f}{w['batch_p50_ms']:>14.1f}"
            f"{w['batch_p99_ms']:>14.1f}{w['driver_retries']:>9}"
        )
    print(
        f"\n{'query':<28}{'pins/query':>11}{'p50 ms':>9}{'p99 ms':>9}{'pins/s @p50':>13}"
        f"{'retries':>9}"
    )
    for name, r in report["queries"].items():
        print(
            f"{name:<28}{r['pins_per_query']:>11}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
            f"{r['pins_per_s_at_p50']:>13.0f}{r['driver_retries']:>9}"
        )
    print("(retries > 0: the server was unavailable or contended; that row includes the waits)")
    e = report["export"]
    print(
        f"\nexport: {e['pins']} pins at {e['pins_per_s']:.0f}/s, "
        f"{e['edges']} edges at {e['edges_per_s']:.0f}/s; in-memory graph built in "
        f"{e['in_memory_graph_build_s']:.1f} s"
    )
    print(f"replay of one batch changed counts: {report['counts']['replay_changed_counts']}")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(level="INFO")
    logging.getLogger("neo4j").addHandler(RETRIES)
    args.prefix = f"bench-graph-{uuid.uuid4().hex[:8]}-"
    report = run(args)
    report["machine"] = {"platform": platform.platform(), "python": platform.python_version()}
    print_table(report)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"graph-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
