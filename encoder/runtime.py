"""OnnxEncoder: a model directory served by onnxruntime. No torch.

Provider choice: "auto" takes CUDA when this onnxruntime build offers it, CPU otherwise;
"cuda" insists (onnxruntime-gpu falls back to CPU silently when CUDA fails to load, so we check
the provider a session actually got); "cpu" forces CPU. The active provider is logged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import structlog

from encoder.manifest import IMAGE_ONNX, PIN_ONNX, TEXT_ONNX, TOKENIZER_FILE, Manifest
from encoder.preprocess import ImagePreprocessor, TextPreprocessor

log = structlog.get_logger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class ProviderUnavailable(RuntimeError):
    """The requested execution provider is not the one onnxruntime actually activated."""


class ModelDirectoryCorrupt(RuntimeError):
    """A file's sha256 does not match the manifest."""


def requested_providers(provider: str) -> list[str]:
    available = ort.get_available_providers()
    if provider == "cpu":
        return [CPU]
    if provider == "cuda":
        if CUDA not in available:
            raise ProviderUnavailable(f"CUDA requested; this onnxruntime offers {available}")
        return [CUDA, CPU]
    if provider == "auto":
        return [CUDA, CPU] if CUDA in available else [CPU]
    raise ValueError(f"provider must be auto, cuda or cpu, not {provider!r}")


def create_session(
    path: str | Path,
    provider: str = "auto",
    intra_op_threads: int = 0,
    allow_spinning: bool = False,
) -> ort.InferenceSession:
    """One inference session; with provider="cuda" fails unless CUDA is really first.

    Spinning threads are off by default: on CPUs shared with other processes (a Faust worker,
    a Kafka client) busy-waiting intra-op threads measured 30-40% slower throughput here.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry(
        "session.intra_op.allow_spinning", "1" if allow_spinning else "0"
    )
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    session = ort.InferenceSession(
        str(path), sess_options=options, providers=requested_providers(provider)
    )
    active = session.get_providers()
    if provider == "cuda" and active[0] != CUDA:
        raise ProviderUnavailable(f"CUDA requested but session runs on {active}")
    log.info("encoder.session", model=Path(path).name, requested=provider, active=active[0])
    return session


class OnnxEncoder:
    """The three exported graphs of one model version, plus its preprocessors."""

    def __init__(
        self,
        model_dir: str | Path,
        provider: str = "auto",
        intra_op_threads: int = 0,
        verify: bool = True,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.manifest = Manifest.load(self.model_dir)
        if verify:
            bad = self.manifest.verify(self.model_dir)
            if bad:
                raise ModelDirectoryCorrupt(f"{self.model_dir}: sha256 mismatch for {bad}")
        self._pin = create_session(self.model_dir / PIN_ONNX, provider, intra_op_threads)
        self._image = create_session(self.model_dir / IMAGE_ONNX, provider, intra_op_threads)
        self._text = create_session(self.model_dir / TEXT_ONNX, provider, intra_op_threads)
        self.providers: list[str] = self._pin.get_providers()

    @classmethod
    def load(
        cls, model_dir: str | Path, provider: str = "auto", intra_op_threads: int = 0
    ) -> OnnxEncoder:
        return cls(model_dir, provider=provider, intra_op_threads=intra_op_threads)

    @property
    def version(self) -> int:
        return self.manifest.version

    @property
    def dim(self) -> int:
        return self.manifest.dim

    def image_preprocessor(self) -> ImagePreprocessor:
        spec = self.manifest.preprocess
        return ImagePreprocessor(
            spec.image_size, spec.mean, spec.std, spec.max_image_bytes, spec.max_image_pixels
        )

    def text_preprocessor(self) -> TextPreprocessor:
        spec = self.manifest.preprocess
        return TextPreprocessor(
            self.model_dir / TOKENIZER_FILE, spec.max_text_length, spec.max_text_chars
        )

    def encode_pins(
        self, pixel_values: np.ndarray, input_ids: np.ndarray, attention_mask: np.ndarray
    ) -> dict[str, np.ndarray]:
        """float32 [B,3,S,S], int64 [B,L], int64 [B,L] → {image, text, pin}: float32 [B,D]."""
        image, text, pin = self._pin.run(
            None,
            {
                "pixel_values": np.ascontiguousarray(pixel_values, dtype=np.float32),
                "input_ids": np.ascontiguousarray(input_ids, dtype=np.int64),
                "attention_mask": np.ascontiguousarray(attention_mask, dtype=np.int64),
            },
        )
        return {"image": image, "text": text, "pin": pin}

    def encode_images(self, pixel_values: np.ndarray) -> np.ndarray:
        feeds = {"pixel_values": np.ascontiguousarray(pixel_values, dtype=np.float32)}
        return np.asarray(self._image.run(None, feeds)[0])

    def encode_texts(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {
            "input_ids": np.ascontiguousarray(input_ids, dtype=np.int64),
            "attention_mask": np.ascontiguousarray(attention_mask, dtype=np.int64),
        }
        return np.asarray(self._text.run(None, feeds)[0])
