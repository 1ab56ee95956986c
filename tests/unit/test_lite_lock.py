"""A milvus-lite directory that another process has open: a typed error, and from the CLI one
line that says what to do — not milvus-lite's traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vector_store import LiteDirectoryLocked, VectorStore

HOLD = (
    "import sys, time\n"
    "from pymilvus import MilvusClient\n"
    "client = MilvusClient(sys.argv[1])\n"
    "print('open', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.fixture
def held_directory(tmp_path: Path) -> Iterator[Path]:
    """A milvus-lite directory held open by another process (as a running worker holds it)."""
    path = tmp_path / "milvus.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        yield path
    finally:
        holder.kill()
        holder.wait()


def test_a_second_process_gets_a_typed_error(held_directory: Path) -> None:
    with pytest.raises(LiteDirectoryLocked, match="open in another process"):
        VectorStore(str(held_directory), dim=8)


def test_the_same_process_may_open_a_directory_twice(tmp_path: Path) -> None:
    first = VectorStore(str(tmp_path / "milvus.db"), dim=8)
    second = VectorStore(str(tmp_path / "milvus.db"), dim=8)  # milvus-lite shares it in-process
    first.close()
    second.close()


def test_the_cli_says_in_one_line_to_use_the_milvus_server(
    held_directory: Path, tmp_path: Path, export_tiny_model: Any, run_pinclip: Any
) -> None:
    export_tiny_model(tmp_path / "registry", 1)
    result = run_pinclip(
        "backfill", "--version", "1", cwd=tmp_path,
        milvus_uri=str(held_directory), registry_url=str(tmp_path / "registry"),
    )  # fmt: skip
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: the milvus-lite directory {held_directory} is open in")
    assert 'eval "$(pinclip services env)"' in lines[0]


def test_the_worker_refuses_to_start_on_it_in_one_line(
    held_directory: Path, tmp_path: Path, export_tiny_model: Any
) -> None:
    from streams.app import preflight
    from streams.config import WorkerConfig
    from streams.errors import ConfigurationError

    export_tiny_model(tmp_path / "registry", 1)
    config = WorkerConfig(milvus_uri=str(held_directory), registry_url=str(tmp_path / "registry"))
    with pytest.raises(ConfigurationError, match="open in another process") as refused:
        preflight(config)
    assert "\n" not in str(refused.value) and "PINCLIP_MILVUS_URI" in str(refused.value)
