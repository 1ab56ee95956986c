"""Periodic retraining: export graph → train → evaluate → promote? → register, publish, backfill.

One round (`retrain_once`) is a straight line of logged, timed, metered steps. The promotion rule
(trainer.promotion) compares the candidate with the live model *on the same split of the same
snapshot* when the live model's weights are in the registry, else with its stored eval.json.
A rejected candidate is not registered, so workers never load it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from prometheus_client import Counter, Gauge, Histogram

from trainer.promotion import METRIC, PromotionDecision, decide_promotion

if TYPE_CHECKING:
    from encoder.registry import RegistryReader
    from graph_store import GraphStore
    from pinclip.backfill import BackfillReport
    from pinclip.registry import ModelRegistry
    from streams.content import FetchPolicy
    from streams.events import ModelUpdate
    from streams.writers import WriterCheck
    from trainer.config import TrainConfig
    from trainer.dataset import Dataset
    from vector_store.backend import VectorVersions

log = structlog.get_logger("retrain")

ROUNDS = Counter("pinclip_retrain_rounds_total", "Retrain rounds by outcome.", ["outcome"])
STEP_SECONDS = Histogram(
    "pinclip_retrain_step_seconds",
    "Duration of each retrain step.",
    ["step"],
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600),
)
RECALL = Gauge(
    "pinclip_retrain_cold_start_recall_at_10", "Cold-start Recall@10 by model role.", ["model"]
)
LIVE_VERSION = Gauge("pinclip_retrain_live_version", "Model version the alias serves.")


@contextmanager
def timed_step(name: str, **fields: Any) -> Iterator[None]:
    log.info("retrain.step.start", step=name, **fields)
    t0 = time.perf_counter()
    try:
        yield
    except Exception:
        log.exception("retrain.step.failed", step=name)
        raise
    finally:
        STEP_SECONDS.labels(name).observe(time.perf_counter() - t0)
    log.info("retrain.step.done", step=name, seconds=round(time.perf_counter() - t0, 2))


@dataclass
class RetrainOutcome:
    decision: PromotionDecision
    version: int | None
    run_dir: Path
    backfilled: int | None = None
    live_before: int | None = None

    def summary(self) -> str:
        if self.version is None:
            kept = f"v{self.live_before}" if self.live_before is not None else "the live model"
            return f"{kept} stays live; the candidate was not registered ({self.run_dir})"
        return (
            f"v{self.version} is live: registered, {self.backfilled} pins backfilled, alias moved"
        )


def retrain_template(
    registry: RegistryReader,
    live: int | None,
    config_path: Path | None = None,
    preset: str | None = None,
) -> tuple[TrainConfig, str]:
    """The TrainConfig a round starts from, and where it came from (said to the user).

    Default: the live version's own training configuration from the registry, so a candidate
    differs from the live model by the data only; versions registered before that was stored
    give their architecture (config.json) with default training settings.
    """
    from trainer.config import TrainConfig

    if config_path is not None:
        return TrainConfig.load(config_path), f"{config_path}"
    if preset is not None:
        return TrainConfig.preset(preset), f"preset {preset!r} (--model)"
    if live is not None:
        stored = registry.read_train_config(live)
        if stored:
            cfg = TrainConfig.from_dict(stored)
            return cfg, f"live v{live}'s training configuration (model {cfg.model})"
        architecture = registry.read_model_config(live)
        if architecture:
            return (
                TrainConfig(model_config=architecture),
                f"live v{live}'s architecture (no training configuration stored) with defaults",
            )
    cfg = TrainConfig.preset()  # the recommended preset
    return cfg, f"no live model: preset {cfg.model!r}"


class Fill(Protocol):
    """Fills the promoted candidate's collection from the graph, moves the alias once it is
    complete and then calls `on_switched(version)`: the one-process backfill
    (`one_process_fill`) or a re-embed consumer group (`pinclip.reembed.group.group_fill`)."""

    def __call__(
        self, version: int, model_dir: Path, on_switched: Callable[[int], None]
    ) -> BackfillReport: ...


@dataclass
class RetrainDeps:
    """What a round talks to; tests substitute prefixes and small configs."""

    registry: ModelRegistry
    graph: GraphStore
    vectors: VectorVersions
    publish: Callable[[ModelUpdate], None]
    state_dir: Path
    id_prefix: str = ""
    provider: str = "auto"
    fetch_policy: FetchPolicy | None = None  # for the one-process backfill's image reads
    # The stream's workers (streams.writers.WriterCheck, e.g. GroupWriters): the backfill waits
    # up to worker_wait_s for each of them to write the candidate — the same rule as
    # `pinclip backfill`. None: no stream runs (tests, an offline system).
    writers: WriterCheck | None = None
    worker_wait_s: float = 120.0
    fill: Fill | None = None  # None: one_process_fill(self)


def one_process_fill(deps: RetrainDeps) -> Fill:
    """The backfill in this process (pinclip.backfill), under the round's writers rule."""
    from pinclip.backfill import backfill

    def fill(version: int, model_dir: Path, on_switched: Callable[[int], None]) -> BackfillReport:
        return backfill(
            version,
            model_dir,
            deps.graph,
            deps.vectors,
            deps.state_dir,
            id_prefix=deps.id_prefix,
            provider=deps.provider,
            fetch_policy=deps.fetch_policy,
            on_switched=on_switched,
            progress=False,
            writers=deps.writers,  # every worker writes the candidate before the fill starts
            writers_timeout_s=deps.worker_wait_s,
        )

    return fill


def _live_recall(
    deps: RetrainDeps, dataset: Dataset, train_cfg: TrainConfig, work: Path
) -> tuple[float | None, str, int | None]:
    """Cold-start Recall@10 of the live model, preferably re-scored on today's split."""
    from trainer.evaluate import evaluate

    live = deps.vectors.live_version() or deps.registry.live()
    if live is None or live not in deps.registry.versions():
        return None, "none", live
    try:
        model_dir = deps.registry.local_dir(live, work / "registry-cache")
        report = evaluate(
            dataset, model_dir, train_cfg.heldout_fraction, train_cfg.split_seed, baselines=()
        )
        return float(report[METRIC]), f"v{live} re-scored on the same split", live
    except Exception as exc:
        log.warning("retrain.live_rescore_failed", version=live, error=str(exc))
    stored = deps.registry.read_eval(live)
    if stored and stored.get(METRIC) is not None:
        return float(stored[METRIC]), f"v{live} from its stored eval.json (other snapshot)", live
    return None, "no eval for live model", live


def retrain_once(
    deps: RetrainDeps, train_template: TrainConfig, work_dir: Path, tolerance: float = 0.0
) -> RetrainOutcome:
    """One full round; returns what was decided and, when promoted, the new version."""
    from encoder.model import PinClipModel
    from trainer.dataset import read_dataset
    from trainer.evaluate import evaluate, write_report
    from trainer.export_graph import export_graph
    from trainer.loop import train

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    work = work_dir / f"round-{stamp}"
    data_dir, run_dir = work / "data", work / "run"
    with timed_step("export", prefix=deps.id_prefix or None):
        export_graph(deps.graph, data_dir, id_prefix=deps.id_prefix)
    dataset = read_dataset(data_dir)
    cfg = replace(train_template, data=str(data_dir), out_dir=str(run_dir))
    with timed_step("train", steps=cfg.steps, model=cfg.model):
        result = train(cfg, resume=False)
    with timed_step("evaluate"):
        report = evaluate(dataset, result.model_dir, cfg.heldout_fraction, cfg.split_seed)
        write_report(report, result.model_dir)
        live_r10, source, live_version = _live_recall(deps, dataset, cfg, work)
    RECALL.labels("candidate").set(report[METRIC])
    if live_r10 is not None:
        RECALL.labels("live").set(live_r10)
    decision = decide_promotion(report[METRIC], live_r10, tolerance, source)
    log.info("retrain.decision", promote=decision.promote, reason=decision.reason)
    if not decision.promote:
        ROUNDS.labels("rejected").inc()
        return RetrainOutcome(decision, None, run_dir, live_before=live_version)

    with timed_step("register"):
        from pinclip.registry import weights_sha256

        model = PinClipModel.load(result.model_dir)
        version, _ = deps.registry.register_model(
            model,
            report,
            parent_version=live_version,
            train_config=cfg.to_dict(),
            weights_sha256=weights_sha256(result.model_dir),
        )
    with timed_step("publish", version=version, stage="candidate"):
        deps.publish(deps.registry.model_update(version, "candidate"))

    def promoted(v: int) -> None:
        deps.registry.set_live(v)
        LIVE_VERSION.set(v)
        deps.publish(deps.registry.model_update(v, "promoted"))

    fill = deps.fill or one_process_fill(deps)
    with timed_step("backfill", version=version):
        filled = fill(version, deps.registry.local_dir(version, work / "registry-cache"), promoted)
    ROUNDS.labels("promoted").inc()
    return RetrainOutcome(decision, version, run_dir, filled.embedded, live_version)


def retrain_forever(
    deps: RetrainDeps,
    train_template: TrainConfig,
    work_dir: Path,
    every_s: float,
    tolerance: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    rounds: int | None = None,
) -> None:
    """Run a round every `every_s` seconds (measured start to start); a failed round is logged
    and counted, and the loop goes on."""
    done = 0
    while rounds is None or done < rounds:
        started = time.monotonic()
        try:
            retrain_once(deps, train_template, work_dir, tolerance)
        except Exception:
            ROUNDS.labels("failed").inc()
            log.exception("retrain.round_failed")
        done += 1
        if rounds is not None and done >= rounds:
            return
        wait = max(0.0, every_s - (time.monotonic() - started))
        log.info("retrain.sleep", seconds=round(wait))
        sleep(wait)
