"""A real Milvus server (PyPI `milvus` 2.3.5): what `pinclip services env` points the app at
(several processes share it), and what proves the vector store against a server as well as
milvus-lite. Without it the app's default is embedded milvus-lite (one process per directory)."""

from __future__ import annotations

import sys

from pinclip.services import process
from pinclip.services.base import Report, Service, quiet_loggers

TEST_URI_VAR = "PINCLIP_TEST_MILVUS_SERVER_URI"


class MilvusServerService(Service):
    name = "milvus"

    def ports(self) -> list[int]:
        return [self.config.milvus_port]

    def address(self) -> str:
        return f"http://{self.config.host}:{self.config.milvus_port}"

    def prepare(self, report: Report) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        self.after_stop()  # an orphan from an earlier crash would hold etcd's ports

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pinclip.services.milvus_server",
            "--data-dir",
            str(self.dir / "data"),
            "--port",
            str(self.config.milvus_port),
            "--child-pid-file",
            str(self.dir / "child.json"),
        ]

    def probe(self) -> bool:
        """`list_collections` answered over gRPC."""
        if not process.port_in_use(self.config.host, self.config.milvus_port):
            return False
        from pymilvus import MilvusClient

        try:
            with quiet_loggers("pymilvus"):
                client = MilvusClient(uri=self.address(), timeout=3)
        except Exception as exc:  # pymilvus raises its own and grpc errors while booting
            self.last_probe_error = repr(exc)
            return False
        try:
            client.list_collections(timeout=3)
            return True
        except Exception as exc:
            self.last_probe_error = repr(exc)
            return False
        finally:
            client.close()

    def stop_grace_s(self) -> float:
        return 40.0

    def after_stop(self) -> None:
        """The milvus binary must not outlive its wrapper: stop it if it did."""
        child_file = self.dir / "child.json"
        child = process.ProcessRecord.load(child_file)
        if child is None:
            return
        binary = process.ProcessRecord(pid=child.pid, marker=str(self.dir / "data"))
        # the binary's cwd/cmdline is `<data>/bin/milvus run standalone`
        gone = process.stop(binary, grace_s=25.0) if process.is_ours(binary) else True
        if gone or not process.is_alive(child.pid):
            child_file.unlink(missing_ok=True)

    def env(self) -> dict[str, str]:
        # The app uses this server too: milvus-lite serves one process per directory, and the
        # worker, the API, backfill and retrain run side by side. Tests keep choosing their
        # Milvus explicitly (tests/conftest.py drops PINCLIP_MILVUS_URI).
        return {"PINCLIP_MILVUS_URI": self.address(), TEST_URI_VAR: self.address()}
