"""Serving imports no torch/transformers: the worker image installs neither."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    ["encoder", "encoder.preprocess", "encoder.runtime", "encoder.batcher", "encoder.service"],
)
def test_serving_module_imports_without_torch(module: str) -> None:
    code = (
        "import sys, importlib\n"
        f"importlib.import_module({module!r})\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "", f"{module} pulled in {done.stdout.strip()}"


def test_blocking_torch_really_breaks_the_model_module() -> None:
    """The check above can fail: with torch made unimportable, encoder.model does not import."""
    code = (
        "import sys\nsys.modules['torch'] = None\n"
        "import encoder.service\n"
        "try:\n    import encoder.model\nexcept ImportError:\n    print('blocked')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "blocked"
