"""`python -m pinclip.services.engine_health`: runs podman healthchecks while the engine runs.

podman schedules healthchecks with systemd timers; without systemd they never run and compose's
`condition: service_healthy` would wait forever. This loop runs `podman healthcheck run` for
every running container that has a healthcheck: often while a container is starting or
unhealthy, now and then once it is healthy. It exits when the engine's socket is gone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from pinclip.services.engine import podman_env

HEALTHY_RECHECK_S = 15.0


def containers_with_health() -> dict[str, str]:
    """Container id -> health state ("starting", "healthy", "unhealthy") of running containers."""
    out = subprocess.run(
        ["podman", "ps", "--no-trunc", "--format", "{{.ID}} {{.Status}}"],
        env=podman_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    ).stdout
    states: dict[str, str] = {}
    for line in out.splitlines():
        cid, _, status = line.partition(" ")
        for state in ("starting", "unhealthy", "healthy"):
            if f"({state})" in status:
                states[cid] = state
                break
    return states


def due(state: str, last_run: float | None, now: float, interval_s: float) -> bool:
    if last_run is None:
        return True
    wait = HEALTHY_RECHECK_S if state == "healthy" else interval_s
    return now - last_run >= wait


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--marker", type=Path, required=True, help="the engine's socket")
    args = parser.parse_args(argv)
    last: dict[str, float] = {}
    missing_since: float | None = None
    while True:
        now = time.monotonic()
        if not args.marker.exists():
            missing_since = missing_since or now
            if now - missing_since > 30:
                return 0
        else:
            missing_since = None
        for cid, state in containers_with_health().items():
            if due(state, last.get(cid), now, args.interval):
                subprocess.run(
                    ["podman", "healthcheck", "run", cid],
                    env=podman_env(),
                    capture_output=True,
                    check=False,
                    timeout=120,
                )
                last[cid] = time.monotonic()
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
