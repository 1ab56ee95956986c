"""`pinclip stream-dataset`: send a dataset's pins and saves to Kafka, then follow the worker.

Three named steps — produce, wait for the worker's consumer group, report the outcome — each
with its own progress; the event mapping is `pinclip.dataset_events` (no I/O, tested alone).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import typer

from pinclip.dataset_events import (
    IMAGE_MODES,
    DatasetPlan,
    Skipped,
    dataset_events,
    plan_dataset,
)
from pinclip.errors import UserError
from pinclip.settings import Settings
from trainer.progress import progress_bar

#: A worker that made no progress for this long is probably not running: say so once.
STALL_HINT_S = 30.0


def stream_dataset(
    settings: Settings,
    data: str,
    *,
    images: str = "inline",
    limit: int | None = None,
    rate: float = 0.0,
    wait: bool = True,
    timeout_s: float = 600.0,
) -> None:
    from streams.catchup import GroupCatchUp
    from streams.config import WorkerConfig
    from streams.topics import ensure_topics
    from trainer.dataset import DatasetFormatError, read_dataset

    if images not in IMAGE_MODES:
        raise UserError(f"--images must be one of {', '.join(IMAGE_MODES)}, not {images!r}")
    try:
        dataset = read_dataset(data)
    except (DatasetFormatError, FileNotFoundError) as exc:
        raise UserError(f"cannot read dataset {data}: {exc}") from exc
    plan = plan_dataset(dataset, limit)
    config = WorkerConfig.from_settings(settings)
    topics = config.topics
    typer.echo(
        f"{data}: {len(plan.pins)} new pins → {topics.created}, "
        f"{len(plan.repins)} repins → {topics.repinned} (images by {images})"
    )
    if plan.without_board:
        typer.echo(
            f"skipping {len(plan.without_board)} pins that no save puts on a board "
            f"(e.g. {plan.without_board[0].pin_id}): a new pin is created on a board"
        )
    ensure_topics(config)
    with GroupCatchUp(config.kafka_bootstrap, config.consumer_group, topics) as catchup:
        inputs_before, outputs_before = catchup.inputs_end(), catchup.outputs_end()
        skipped = _produce(config, dataset_events(dataset, plan, images=images), plan, rate)
        _report_skipped(skipped)
        if not wait:
            typer.echo("not waiting for the worker (--no-wait)")
            return
        inputs_after = catchup.inputs_end()
        _wait_for_worker(catchup, inputs_before, inputs_after, timeout_s)
        ids = {p.pin_id for p in plan.pins} | {s.pin_id for s in plan.repins}
        outcomes = catchup.outcomes(outputs_before, ids)
    new_pins = len(plan.pins) - sum(1 for s in skipped if s.pin_id in plan.first_save)
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.reasons().items()))
    typer.echo(
        f"worker: {len(outcomes.embedded)} of {new_pins} new pins embedded and searchable, "
        f"{len(outcomes.dead)} events dead-lettered" + (f" ({reasons})" if reasons else "")
    )
    if outcomes.dead:
        typer.echo(f"dead letters (stage, reason, payload) are on the topic {topics.dlq}")


def _produce(config: Any, events: Iterable[Any], plan: DatasetPlan, rate: float) -> list[Skipped]:
    from streams.producer import EventProducer

    skipped: list[Skipped] = []
    started = time.monotonic()
    bar = progress_bar(plan.events, desc="producing", unit="event")
    with EventProducer(config.kafka_bootstrap, config.topics) as producer:
        for sent, event in enumerate(events, start=1):
            if isinstance(event, Skipped):
                skipped.append(event)
            else:
                producer.send(event)
            bar.update(1)
            if rate > 0:  # pace: event n leaves no earlier than n / rate seconds after start
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush()
    bar.close()
    return skipped


def _report_skipped(skipped: list[Skipped], shown: int = 5) -> None:
    for item in skipped[:shown]:
        typer.echo(f"skipped {item.pin_id}: {item.reason}")
    if len(skipped) > shown:
        typer.echo(f"... and {len(skipped) - shown} more skipped")


def _wait_for_worker(catchup: Any, before: Any, after: Any, timeout_s: float) -> None:
    """Follow the group's committed offsets until they reach `after`, with progress."""
    from streams.catchup import processed_between

    done, total = processed_between(before, after, catchup.committed())
    bar = progress_bar(total, desc=f"worker ({catchup.group})", unit="event", initial=done)
    deadline = time.monotonic() + timeout_s
    last_change, hinted = time.monotonic(), False
    try:
        while done < total:
            if time.monotonic() > deadline:
                raise UserError(
                    f"the worker processed {done} of {total} events in {timeout_s:.0f}s; it "
                    "goes on in the background — check `pinclip worker` output, or rerun with "
                    "a longer --timeout"
                )
            time.sleep(1.0)
            now_done, _ = processed_between(before, after, catchup.committed())
            if now_done != done:
                bar.update(now_done - done)
                done, last_change = now_done, time.monotonic()
            elif not hinted and time.monotonic() - last_change > STALL_HINT_S:
                hinted = True
                typer.echo(
                    f"no progress for {STALL_HINT_S:.0f}s: is a worker running with consumer "
                    f"group {catchup.group!r}? (`pinclip worker`, same PINCLIP_* settings)",
                    err=True,
                )
    finally:
        bar.close()
