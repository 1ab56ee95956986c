"""`python -m pinclip.services.milvus_server`: a real Milvus standalone server (PyPI `milvus`)
in its own process, stopped gracefully on SIGTERM.

Why a wrapper: `default_server.stop()` kills the binary after 1 s, which can leave embedded
etcd unclean (the next start panics), and a SIGTERM to a bare wrapper once orphaned the child.
Here SIGTERM gives the binary time to shut down and the child's pid is recorded so
`pinclip services down` can verify it is gone.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

from pinclip.services.process import ProcessRecord

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def bind_reusable(port: int) -> socket.socket | None:
    """A listening socket on `port` with SO_REUSEADDR, or None when the port is taken.

    SO_REUSEADDR is what the Milvus binary itself (Go's net.Listen) binds with: a port another
    process listens on is refused, while connections of a stopped server in TIME_WAIT are not in
    the way. A bind without it fails for up to a minute after every stop with open clients —
    that made a restart on the same port take 60 s."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, port))
        sock.listen()
        return sock
    except OSError:
        sock.close()
        return None


def wait_until_bindable(port: int, timeout_s: float = 120.0) -> bool:
    """Wait until no other process listens on `port`: the package would otherwise silently
    move to the next free port (where no client looks)."""
    deadline = time.monotonic() + timeout_s
    while True:
        sock = bind_reusable(port)
        if sock is not None:
            sock.close()
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)


def etcd_config(data_dir: Path, client_port: int, peer_port: int) -> str:
    """Embedded etcd otherwise binds the fixed ports 2379/2380, so a second Milvus on the same
    machine (another checkout, another developer) would panic at start."""
    client = f"http://{LOOPBACK}:{client_port}"
    peer = f"http://{LOOPBACK}:{peer_port}"
    return (
        "name: default\n"
        f"data-dir: {data_dir}\n"
        f"listen-client-urls: {client}\n"
        f"advertise-client-urls: {client}\n"
        f"listen-peer-urls: {peer}\n"
        f"initial-advertise-peer-urls: {peer}\n"
        f"initial-cluster: default={peer}\n"
    )


# A stop must finish before the wrapper's SIGKILL (25 s). The package's template lets a graceful
# stop take 1800 s, and the query node alone waits out its hand-off timeout (default 30 s) for
# segments no other node will ever take in standalone mode: every SIGTERM ended in a SIGKILL of
# a half-stopped server (and embedded etcd) 25 s later.
QUERY_NODE_STOP_S = 3
GRACEFUL_STOP_S = 15


def config_template(base_template: str, etcd_config_path: Path) -> str:
    """The package's milvus.yaml template plus `etcd.config.path` (read by embedded etcd) and
    stop timeouts that let SIGTERM finish a clean shutdown."""
    common_stop = re.compile(r"^(  gracefulStopTimeout:) *\d+", re.MULTILINE)
    text, found = common_stop.subn(rf"\g<1> {GRACEFUL_STOP_S}", base_template, count=1)
    etcd = "  use:\n    embed: true"
    if not found or etcd not in text or "\nqueryNode:\n" not in text:
        raise RuntimeError("unexpected milvus config template: cannot set etcd and stop timeouts")
    text = text.replace(etcd, f"  config:\n    path: {etcd_config_path}\n{etcd}", 1)
    return text.replace(
        "\nqueryNode:\n", f"\nqueryNode:\n  gracefulStopTimeout: {QUERY_NODE_STOP_S}\n", 1
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=19530)
    parser.add_argument("--child-pid-file", type=Path, required=True)
    args = parser.parse_args(argv)

    import milvus
    from milvus import MilvusServer

    data_dir = args.data_dir.resolve()
    configs = data_dir / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    etcd_yaml = configs / "embed-etcd.yaml"
    etcd_yaml.write_text(etcd_config(data_dir / "data" / "etcd.data", free_port(), free_port()))
    template = configs / "milvus.yaml.template"
    config_class = reusable_port_config_class()
    template.write_text(config_template(config_class().template_text, etcd_yaml))

    config = config_class(template=str(template))
    # the package only sets this when it loads its own template
    config.glog_conf_file = str(Path(milvus.__file__).parent / "data" / "glog.conf")
    server = MilvusServer(config, wait_for_started=False)
    server.set_base_dir(str(data_dir))
    # pinned (in `configs`): a busy port is an error, never a silent move to the next one
    config.update(proxy_port=args.port)
    stop_requested = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    proc = launch(server, args.port, args.child_pid_file)
    healthy = proc is not None and wait_healthy(server, proc, stop_requested)
    if not healthy and not stop_requested.is_set() and (data_dir / "data").exists():
        # Test data only: an unclean embedded-etcd store (e.g. after a SIGKILL) can make the
        # binary exit at start; a fresh store is better than a server that never comes up.
        print("milvus did not come up on its existing data: wiping it, retrying", flush=True)
        shutdown(server, args.child_pid_file)
        shutil.rmtree(data_dir / "data", ignore_errors=True)
        server.set_base_dir(str(data_dir))
        proc = launch(server, args.port, args.child_pid_file)
        healthy = proc is not None and wait_healthy(server, proc, stop_requested)
    if proc is None or not healthy:
        print("milvus failed to start", file=sys.stderr, flush=True)
        shutdown(server, args.child_pid_file)
        return 1
    print("milvus ready", flush=True)

    while not stop_requested.is_set():
        if proc.poll() is not None:
            print(f"milvus exited with {proc.returncode}", file=sys.stderr, flush=True)
            shutdown(server, args.child_pid_file)
            return proc.returncode or 1
        stop_requested.wait(1.0)
    shutdown(server, args.child_pid_file)
    print("milvus stopped", flush=True)
    return 0


def reusable_port_config_class() -> Any:
    from milvus import MilvusServerConfig

    class ReusablePortConfig(MilvusServerConfig):  # type: ignore[misc]
        """The package checks its ports with a bind of its own, without SO_REUSEADDR."""

        def try_bind_port(self, port: int) -> socket.socket | None:
            return bind_reusable(port)

    return ReusablePortConfig


def launch(server: Any, port: int, child_pid_file: Path) -> subprocess.Popen[bytes] | None:
    if not wait_until_bindable(port):
        print(f"port {port} stayed unbindable", file=sys.stderr, flush=True)
        return None
    # its health port defaults to 9091 and "moves up" when taken — onto Kafka's 9092
    server.webservice_port = free_port()
    server.start()
    proc: subprocess.Popen[bytes] | None = server.server_proc
    if proc is not None:
        ProcessRecord(pid=proc.pid, marker="milvus").save(child_pid_file)
        print(f"milvus standalone pid={proc.pid} port={port}", flush=True)
    return proc


def wait_healthy(
    server: Any, proc: subprocess.Popen[bytes], stop: threading.Event, timeout_s: float = 170.0
) -> bool:
    """Poll /healthz until OK; unlike the package's own wait, give up when the binary exits."""
    url = f"http://{LOOPBACK}:{server.webservice_port}/healthz"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.is_set():
        if proc.poll() is not None:
            print(f"milvus exited during start with {proc.returncode}", flush=True)
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if b"OK" in response.read():
                    return True
        except OSError:
            pass
        stop.wait(0.5)
    return False


def shutdown(server: Any, child_pid_file: Path) -> None:
    """SIGTERM and a long grace: Milvus flushes and closes embedded etcd cleanly."""
    proc = server.server_proc
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    server.server_proc = None
    server.stop()  # closes the log files it opened
    child_pid_file.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
