"""Registering models: the write side of the registry (encoder.registry holds its layout and
reading). A version is visible only once its `manifest.json` exists, and the manifest is uploaded
last, so readers (the worker, the backfill) never see a half-copied model. `live.json` records
which version the alias serves, for the retrain loop's promotion rule.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from encoder.registry import EVAL, LIVE, MANIFEST, SOURCE, TRAIN_CONFIG, RegistryReader

if TYPE_CHECKING:
    from encoder.manifest import Manifest
    from encoder.model import PinClipModel
    from streams.events import ModelUpdate

log = structlog.get_logger("registry")


class ModelRegistry(RegistryReader):
    """A registry that this process may write: upload, register, mark live, announce."""

    def upload(self, local_dir: Path, version: int) -> str:
        """Copy a finished model directory to v<N>; the manifest goes last."""
        target = self._path(f"v{version}")
        if self.fs.exists(f"{target}/{MANIFEST}"):
            raise FileExistsError(f"registry already has v{version}")
        files = sorted(p for p in local_dir.rglob("*") if p.is_file())
        for path in [*(p for p in files if p.name != MANIFEST), local_dir / MANIFEST]:
            rel = path.relative_to(local_dir).as_posix()
            dest = f"{target}/{rel}"
            self.fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
            self.fs.put_file(str(path), dest)
        log.info("registry.uploaded", version=version, url=self.version_url(version))
        return self.version_url(version)

    def register_model(
        self,
        model: PinClipModel,
        eval_report: dict[str, Any] | None = None,
        parent_version: int | None = None,
        version: int | None = None,
        train_config: dict[str, Any] | None = None,
        weights_sha256: str | None = None,
    ) -> tuple[int, Manifest]:
        """Export (ONNX + torch weights + manifest) with eval.json, the training configuration
        and the source run's weights hash inside, then upload as v<N>."""
        from encoder.export import export_model

        version = version if version is not None else (self.latest() or 0) + 1
        summary = _eval_summary(eval_report) if eval_report else {}
        with tempfile.TemporaryDirectory(prefix="pinclip-export-") as tmp:
            staging = Path(tmp) / f"v{version}"
            staging.mkdir()
            extras = {EVAL: eval_report, TRAIN_CONFIG: train_config}
            if weights_sha256 is not None:
                extras[SOURCE] = {"weights_sha256": weights_sha256}
            for name, content in extras.items():
                if content is not None:
                    (staging / name).write_text(json.dumps(content, indent=2, sort_keys=True))
            manifest = export_model(
                model, staging, version, parent_version=parent_version, eval_summary=summary
            )
            self.upload(staging, version)
        return version, manifest

    def require(self, version: int) -> None:
        """UserError naming the versions there are, unless v<N> is registered."""
        from pinclip.errors import UserError

        found = self.versions()
        if version in found:
            return
        have = f"have {', '.join(map(str, found))}" if found else "it is empty"
        raise UserError(f"no v{version} in the registry {self.url} ({have})")

    def set_live(self, version: int) -> None:
        self.fs.makedirs(self.root, exist_ok=True)
        with self.fs.open(self._path(LIVE), "w") as f:
            json.dump({"version": version}, f)

    def model_update(self, version: int, stage: str) -> ModelUpdate:
        from streams.models import model_update_for

        return model_update_for(self.url, version, stage)


def weights_sha256(model_dir: Path) -> str:
    """Identity of a trained model: sha256 over its files (name and bytes), eval.json aside (it
    is written later, by `pinclip eval`, and says nothing about the weights)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name != EVAL):
        digest.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _eval_summary(report: dict[str, Any]) -> dict[str, Any]:
    rows = report.get("rows", {})
    return {
        "cold_start_recall@10": report.get("cold_start_recall@10"),
        "cold_start_mrr": report.get("cold_start_mrr"),
        "baselines_recall@10": {
            name: row.get("recall@10") for name, row in rows.items() if name != "model"
        },
    }


def send_model_update(bootstrap: str, topic: str, update: ModelUpdate) -> None:
    """Produce one ModelUpdate (JSON) and wait until Kafka has it."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    try:
        producer.send(topic, value=update.to_json_bytes(), key=str(update.version).encode())
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)
    log.info("model_update.sent", topic=topic, version=update.version, stage=update.stage)
