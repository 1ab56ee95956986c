"""The model registry: versioned directories `v<N>/` under one fsspec URL (local or s3).

A version is visible only once its `manifest.json` exists, and the manifest is uploaded last,
so readers (the worker, the backfill) never see a half-copied model. `live.json` at the root
records which version the alias serves, for the retrain loop's promotion rule.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
import structlog

if TYPE_CHECKING:
    from encoder.manifest import Manifest
    from encoder.model import PinClipModel
    from streams.events import ModelUpdate

log = structlog.get_logger("registry")

MANIFEST = "manifest.json"
EVAL = "eval.json"
LIVE = "live.json"
TRAIN_CONFIG = "train_config.json"  # how the version was trained: what retrain starts from
SOURCE = "source.json"  # {"weights_sha256": ...} of the run it came from: refuses duplicates


def absolute_url(url: str) -> str:
    """Local paths become absolute so a worker in another directory resolves them the same."""
    if "://" in url and not url.startswith("file://"):
        return url.rstrip("/")
    path = url[len("file://") :] if url.startswith("file://") else url
    return os.path.abspath(path)


class ModelRegistry:
    def __init__(self, url: str) -> None:
        self.url = absolute_url(url)
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.root = self.root.rstrip("/")

    def _path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def version_url(self, version: int) -> str:
        return f"{self.url}/v{version}"

    def versions(self) -> list[int]:
        from streams.models import registry_versions

        return registry_versions(self.url)

    def latest(self) -> int | None:
        found = self.versions()
        return found[-1] if found else None

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

    def read_eval(self, version: int) -> dict[str, Any] | None:
        return self._read_json(version, EVAL)

    def read_train_config(self, version: int) -> dict[str, Any] | None:
        """The TrainConfig (as a dict) v<N> was trained with; None for versions registered
        before it was recorded."""
        return self._read_json(version, TRAIN_CONFIG)

    def read_model_config(self, version: int) -> dict[str, Any] | None:
        """v<N>'s PinClipConfig (encoder.model.CONFIG_FILE of its torch checkpoint; named here
        so that reading it needs no torch)."""
        return self._read_json(version, "config.json")

    def _read_json(self, version: int, name: str) -> dict[str, Any] | None:
        path = self._path(f"v{version}", name)
        if not self.fs.exists(path):
            return None
        data: dict[str, Any] = json.loads(self.fs.cat_file(path))
        return data

    def require(self, version: int) -> None:
        """UserError naming the versions there are, unless v<N> is registered."""
        from pinclip.errors import UserError

        found = self.versions()
        if version in found:
            return
        have = f"have {', '.join(map(str, found))}" if found else "it is empty"
        raise UserError(f"no v{version} in the registry {self.url} ({have})")

    def version_with_weights(self, weights_sha256: str) -> int | None:
        """The registered version made from these weights, if any."""
        for version in self.versions():
            source = self._read_json(version, SOURCE) or {}
            if source.get("weights_sha256") == weights_sha256:
                return version
        return None

    def local_dir(self, version: int, cache_dir: Path) -> Path:
        from streams.models import local_model_dir

        return local_model_dir(self.version_url(version), cache_dir)

    def live(self) -> int | None:
        path = self._path(LIVE)
        if not self.fs.exists(path):
            return None
        return int(json.loads(self.fs.cat_file(path))["version"])

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
