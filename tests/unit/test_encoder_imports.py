"""Serving imports no torch/transformers: the worker image installs neither."""

from __future__ import annotations

import subprocess
import sys

SERVING = ["encoder", "encoder.preprocess", "encoder.runtime", "encoder.batcher", "encoder.service"]


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip()


def test_serving_modules_import_without_torch() -> None:
    # Imported one after another in a fresh interpreter; the first one that drags in a heavy
    # module is named.
    code = (
        "import sys, importlib\n"
        f"for name in {SERVING!r}:\n"
        "    importlib.import_module(name)\n"
        "    heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "    if heavy:\n"
        "        print(name, heavy)\n"
        "        break\n"
    )
    assert _run(code) == ""


def test_the_check_can_fail_the_model_module_needs_torch() -> None:
    """The same probe on encoder.model does see torch: the test above is not vacuous."""
    code = "import sys, encoder.model\nprint('torch' in sys.modules)\n"
    assert _run(code) == "True"
