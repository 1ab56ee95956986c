"""Tables of the freshness benchmark: rates, the per-stage profile, the side-by-side summary."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from bench.streambench.procstat import group_threads

THREAD_GROUPS = (
    ("child:", "decode processes"),
    ("loop", "event loop (Faust, parse, produce)"),
    ("decode", "decode threads"),
    ("encode", "encode (onnxruntime)"),
    ("onnxruntime", "encode (onnxruntime)"),
    ("milvus", "Milvus client threads"),
    ("neo4j", "Neo4j driver threads"),
    ("asyncio", "store/file calls (to_thread)"),
    ("fetch", "image fetch threads"),
    ("AIOKafkaConsum", "Kafka consumer thread (Faust/aiokafka)"),
    ("pinclip-fetch", "image fetch threads"),
    ("event_engine", "grpc threads (pymilvus)"),
    ("grpc", "grpc threads (pymilvus)"),
    ("default-exec", "grpc threads (pymilvus)"),
    ("resolver", "grpc threads (pymilvus)"),
)
STAGE_ORDER = (
    "poll",
    "parse",
    "fetch",
    "decode+encode",
    "queue",
    "decode",
    "encode",
    "neo4j_write",
    "milvus_write",
    "produce",
    "commit",
)
_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>.*)\}$")


def stage_deltas(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, dict]:
    """Per stage: wall, pin-seconds, cpu, pins — deltas of the worker's stage counters."""
    kinds = {
        "pinclip_stage_seconds_total": "wall",
        "pinclip_stage_pin_seconds_total": "pin_wall",
        "pinclip_stage_cpu_seconds_total": "cpu",
        "pinclip_stage_pins_total": "pins",
    }
    out: dict[str, dict[str, float]] = {}
    for key, value in after.items():
        match = _SAMPLE.match(key)
        if not match or match["name"] not in kinds:
            continue
        stage = match["labels"].removeprefix("stage=")
        delta = value - before.get(key, 0.0)
        out.setdefault(stage, {})[kinds[match["name"]]] = delta
    return out


def profile(window: Mapping[str, Any], pins: int) -> dict[str, Any]:
    """ms per pin from one measured window: stages (worker counters) and CPU (from /proc)."""
    per_pin = 1000.0 / max(pins, 1)
    stages = {}
    for name in sorted(window["stages"], key=_stage_rank):
        s = window["stages"][name]
        counted = s.get("pins", 0.0) or pins
        stages[name] = {
            "latency_ms": round(1000.0 * s.get("pin_wall", 0.0) / max(counted, 1), 2),
            "busy_ms_per_pin": round(s.get("wall", 0.0) * per_pin, 3),
            "cpu_ms_per_pin": round(s.get("cpu", 0.0) * per_pin, 3) if s.get("cpu") else None,
        }
    threads = group_threads(window["threads"], THREAD_GROUPS)
    cpu = {k: round(v * per_pin, 3) for k, v in sorted(threads.items(), key=lambda kv: -kv[1])}
    processes = {k: round(v * per_pin, 3) for k, v in window["processes"].items()}
    raw = sorted(window["threads"].items(), key=lambda kv: -kv[1])[:12]
    return {
        "pins": pins,
        "stages": stages,
        "worker_threads": cpu,
        "processes": processes,
        "threads_by_name": {k: round(v * per_pin, 3) for k, v in raw},
    }


def _stage_rank(name: str) -> int:
    return STAGE_ORDER.index(name) if name in STAGE_ORDER else len(STAGE_ORDER)


def rates_table(name: str, rows: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        f"{name}:",
        f"{'rate/s':>8} {'sent':>6} {'embedded':>8} {'p50 ms':>8} {'p99 ms':>8} {'lag slope':>9} "
        f"{'drain s':>7} {'CPU ms/pin':>10} {'machine':>8} sustained",
    ]
    for r in rows:
        lines.append(
            f"{r['rate']:>8} {r['sent']:>6} {r['embedded']:>8} {r['p50_ms']!s:>8} "
            f"{r['p99_ms']!s:>8} {r['lag_slope_per_s']:>9} {r['drain_s']:>7} "
            f"{r.get('cpu_ms_per_pin', '-')!s:>10} {r.get('machine_ms_per_pin', '-')!s:>8} "
            f"{r['sustained']}"
        )
    return "\n".join(lines)


def profile_table(title: str, prof: Mapping[str, Any], encoder_cpu_ms: float | None) -> str:
    lines = [title, f"{'stage':<16} {'latency ms':>10} {'busy ms/pin':>11} {'CPU ms/pin':>10}"]
    for name, s in prof["stages"].items():
        cpu = "-" if s["cpu_ms_per_pin"] is None else f"{s['cpu_ms_per_pin']:.3f}"
        lines.append(f"{name:<16} {s['latency_ms']:>10.1f} {s['busy_ms_per_pin']:>11.3f} {cpu:>10}")
    lines.append("")
    lines.append(f"{'CPU ms per pin':<44} {'ms/pin':>8}")
    processes = prof["processes"]
    lines.append(f"  {'worker process tree':<42} {processes.get('consumer', 0.0):>8.3f}")
    for name, value in prof["worker_threads"].items():
        lines.append(f"    {name:<40} {value:>8.3f}")
    for name, value in processes.items():
        if name != "consumer":
            lines.append(f"  {name:<42} {value:>8.3f}")
    if encoder_cpu_ms is not None:
        lines.append(f"  {'(the model alone, raw pin-head run)':<42} {encoder_cpu_ms:>8.3f}")
    return "\n".join(lines)


def comparison_table(summary: Mapping[str, Mapping[str, Any]]) -> str:
    names = list(summary)
    rows = [
        ("highest sustained pins/s", "sustained_per_s"),
        ("  as a fraction of the raw limit", "sustained_fraction"),
        ("every rate sustained up to pins/s", "every_rate_sustained_up_to"),
        ("equal offered load pins/s", "equal_rate"),
        ("  p50 ms at equal load", "equal_p50_ms"),
        ("  p99 ms at equal load", "equal_p99_ms"),
        ("  CPU ms/pin at equal load (consumer)", "equal_cpu_ms"),
        ("  CPU ms/pin at equal load (machine)", "equal_machine_ms"),
        ("p99 ms at half the raw limit", "half_p99_ms"),
    ]
    lines = [f"{'':<40}" + "".join(f"{n:>14}" for n in names)]
    for label, key in rows:
        cells = "".join(f"{summary[n].get(key, '-')!s:>14}" for n in names)
        lines.append(f"{label:<40}{cells}")
    return "\n".join(lines)
