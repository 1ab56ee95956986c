"""The CUDA provider really runs the exported model when a GPU is present."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import onnxruntime as ort
import pytest
import torch

from encoder.config import PinClipConfig
from encoder.export import export_model
from encoder.model import PinClipModel
from encoder.runtime import CUDA, OnnxEncoder

pytestmark = pytest.mark.gpu


def _gpu_present() -> bool:
    """Asks the driver, not torch: the serving image may have no CUDA-enabled torch."""
    if shutil.which("nvidia-smi") is None:
        return False
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return listed.returncode == 0 and "GPU" in listed.stdout


def test_cuda_provider_matches_cpu(tmp_path) -> None:
    if not _gpu_present():
        pytest.skip("no NVIDIA GPU on this machine (nvidia-smi -L lists none)")
    if CUDA not in ort.get_available_providers():
        pytest.skip("GPU present but the CPU onnxruntime build is installed (use the gpu extra)")
    # From here on a failure is real: a GPU and onnxruntime-gpu, yet CUDA does not run.
    torch.manual_seed(0)
    export_model(PinClipModel(PinClipConfig.tiny()), tmp_path, version=1)
    gpu = OnnxEncoder.load(tmp_path, provider="cuda")
    cpu = OnnxEncoder.load(tmp_path, provider="cpu")
    assert gpu.providers[0] == CUDA
    rng = np.random.default_rng(0)
    pixels = rng.standard_normal((8, 3, 32, 32), dtype=np.float32)
    ids, mask = gpu.text_preprocessor().encode(["a pin"] * 8)
    got, expected = gpu.encode_pins(pixels, ids, mask), cpu.encode_pins(pixels, ids, mask)
    for name in ("image", "text", "pin"):
        np.testing.assert_allclose(got[name], expected[name], atol=1e-3)
