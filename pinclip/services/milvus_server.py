"""`python -m pinclip.services.milvus_server`: a real Milvus standalone server (PyPI `milvus`)
in its own process, stopped gracefully on SIGTERM.

Why a wrapper: `default_server.stop()` kills the binary after 1 s, which can leave embedded
etcd unclean (the next start panics), and a SIGTERM to a bare wrapper once orphaned the child.
Here SIGTERM gives the binary time to shut down and the child's pid is recorded so
`pinclip services down` can verify it is gone.
"""

from __future__ import annotations

import argparse
import shutil
import signal
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
    import socket

    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_until_bindable(port: int, timeout_s: float = 120.0) -> bool:
    """Milvus binds without SO_REUSEADDR: right after a stop, connections in TIME_WAIT keep the
    port unbindable for up to a minute, and the package would silently move to the next port."""
    import socket
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        with socket.socket() as sock:
            try:
                sock.bind((LOOPBACK, port))
                return True
            except OSError:
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


def config_template(base_template: str, etcd_config_path: Path) -> str:
    """The package's milvus.yaml template plus `etcd.config.path` (read by embedded etcd)."""
    marker = "  use:\n    embed: true"
    if marker not in base_template:
        raise RuntimeError("unexpected milvus config template: cannot add etcd.config.path")
    return base_template.replace(marker, f"  config:\n    path: {etcd_config_path}\n{marker}", 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=19530)
    parser.add_argument("--child-pid-file", type=Path, required=True)
    args = parser.parse_args(argv)

    import milvus
    from milvus import MilvusServer, MilvusServerConfig

    data_dir = args.data_dir.resolve()
    configs = data_dir / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    etcd_yaml = configs / "embed-etcd.yaml"
    etcd_yaml.write_text(etcd_config(data_dir / "data" / "etcd.data", free_port(), free_port()))
    template = configs / "milvus.yaml.template"
    template.write_text(config_template(MilvusServerConfig().template_text, etcd_yaml))

    config = MilvusServerConfig(template=str(template))
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
