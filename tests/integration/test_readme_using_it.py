"""The README's "Using it" section, run as written: its bash blocks are read from README.md at
test time (never copied here) and run top to bottom in one shell, against real services.

Only sizes change (`--pins`, `--steps`, the `--model` preset: each must appear exactly once, so
a README edit that drops one fails here instead of silently running the full size). Everything
else is isolated through the settings the README's own commands read, because other tests use
the shared services at the same time:
- Kafka and Neo4j: the README's `pinclip services up` starts PRIVATE ones on free ports
  (PINCLIP_SERVICES_*_PORT) under this test's state dir — so its topics, consumer group and
  Pin–Board graph (which retrain exports) hold this run's data only — and its
  `pinclip services down` stops them;
- Milvus: the shared server, which `services up` finds answering and uses
  (PINCLIP_SERVICES_MILVUS_PORT); this run's collections and alias get their own names
  (PINCLIP_MILVUS_PREFIX, PINCLIP_MILVUS_ALIAS) and are dropped afterwards;
- the registry, state and data: `var/` under a fresh working directory;
- the API and metrics ports: free ones (PINCLIP_API_PORT, PINCLIP_METRICS_PORT).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Using it"
# Sizes for CI: (pattern, replacement) — fewer pins, fewer steps and a smaller model preset
# (presets are the model sizes: trainer.config.model_preset); the commands stay the same.
SIZES = (
    (r"--pins \d+", "--pins 160"),
    (r"--steps \d+", "--steps 6"),
    (r"--model stem\b", "--model small"),
)
TIMEOUT_S = 1500

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]


def using_it_script(readme: str) -> str:
    """Every ```bash block of the "Using it" section, in order, sizes replaced."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start : end if end != -1 else None]
    blocks = re.findall(r"^```bash\n(.*?)^```", section, flags=re.S | re.M)
    assert blocks, "no bash blocks in the README's 'Using it' section"
    script = "\n".join(blocks)
    for pattern, replacement in SIZES:
        script, count = re.subn(pattern, replacement, script)
        assert count == 1, f"README 'Using it' should give {pattern!r} exactly once, found {count}"
    return script


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object printed on a line of its own, in order."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


@pytest.fixture
def readme_env(tmp_path: Path, milvus_server_uri: str) -> Iterator[dict[str, str]]:
    if shutil.which("java") is None or shutil.which("kcat") is None:
        pytest.skip("the README's services need java; its examples use kcat")
    server = urlparse(milvus_server_uri)
    if server.hostname not in ("127.0.0.1", "localhost"):
        pytest.skip(f"services up reuses a loopback Milvus server only, not {server.hostname}")
    tag = f"readme{uuid.uuid4().hex[:8]}"
    kafka, controller, bolt = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PINCLIP_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        PINCLIP_SERVICES_KAFKA_PORT=str(kafka),
        PINCLIP_SERVICES_KAFKA_CONTROLLER_PORT=str(controller),
        PINCLIP_SERVICES_NEO4J_BOLT_PORT=str(bolt),
        PINCLIP_SERVICES_MILVUS_PORT=str(server.port),
        PINCLIP_MILVUS_ALIAS=f"{tag}_pins",
        PINCLIP_MILVUS_PREFIX=f"{tag}_v",
        PINCLIP_API_PORT=str(free_port()),
        PINCLIP_METRICS_PORT=str(free_port()),
    )
    if os.environ.get("PYTHONPATH"):  # a developer's checkout under test
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    try:
        yield env
    finally:
        subprocess.run(  # stops the private Kafka and Neo4j if the script did not get there
            [sys.executable, "-m", "pinclip.cli", "services", "down"],
            cwd=tmp_path, env=env, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        from vector_store import VectorStore

        store = VectorStore(milvus_server_uri, alias=f"{tag}_pins", prefix=f"{tag}_v")
        try:
            store.purge()
        finally:
            store.close()


def test_the_readme_using_it_section_runs_as_written(
    tmp_path: Path, readme_env: dict[str, str]
) -> None:
    script = using_it_script(README.read_text(encoding="utf-8"))
    log = tmp_path / "readme-run.log"
    with log.open("w") as out:
        shell = subprocess.Popen(
            ["bash", "-c", "PS4='+ [$(date +%T)] '\nset -euxo pipefail\n" + script],
            cwd=tmp_path,
            env=readme_env,
            stdout=subprocess.PIPE,
            stderr=out,
            text=True,
            start_new_session=True,  # its background jobs (worker, api) share its group
        )
        try:
            stdout, _ = shell.communicate(timeout=TIMEOUT_S)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shell.pid, signal.SIGTERM)  # whatever of ours still runs
            if shell.poll() is None:
                shell.kill()
    detail = _failure_detail(tmp_path, stdout if shell.returncode is not None else "", log)
    assert shell.returncode == 0, detail

    assert re.search(r"worker: (\d+) of \1 new pins embedded and searchable", stdout), detail
    answers = json_objects(stdout)
    similar = [a for a in answers if a.get("pin_id") == "p000042" and "results" in a]
    assert similar, detail
    first, last = similar[0], similar[-1]
    assert first["model_version"] == 1 and len(first["results"]) == 5, first
    assert re.search(r"^promote: candidate cold_start_recall@10", stdout, re.M), detail
    assert "v2 is live" in stdout, detail
    assert last["model_version"] == 2 and len(last["results"]) == 5, last
    assert all(hit["pin_id"] != "p000042" for hit in last["results"]), last
    searches = [a for a in answers if "results" in a and "pin_id" not in a]
    assert len(searches) >= 4 and all(a["results"] for a in searches), searches  # text, image
    assert (tmp_path / "var" / "p000042.png").read_bytes().startswith(b"\x89PNG")
    assert "kafka: stopped (process exited)" in log.read_text(), detail


def _failure_detail(root: Path, stdout: str, log: Path) -> str:
    parts = [f"--- stdout\n{stdout[-4000:]}", f"--- trace\n{log.read_text()[-6000:]}"]
    for name in ("worker.log", "api.log"):
        path = root / "var" / name
        if path.exists():
            parts.append(f"--- {name}\n{path.read_text()[-3000:]}")
    return "\n".join(parts)
