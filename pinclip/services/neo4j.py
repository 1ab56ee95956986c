"""Neo4j 5.26 LTS community server, run from Maven Central jars on Java 17, Bolt only."""

from __future__ import annotations

from pathlib import Path

from pinclip.services import maven
from pinclip.services.base import Report, Service, java_or_fail, quiet_loggers

# The stock launcher passes these; Neo4j's off-heap memory tracking needs them on Java 17.
ADD_OPENS = [
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
]


def server_overrides(host: str, bolt_port: int, pagecache: str) -> dict[str, str]:
    return {
        "dbms.security.auth_enabled": "false",
        "server.default_listen_address": host,
        "server.bolt.listen_address": f"{host}:{bolt_port}",
        "server.bolt.advertised_address": f"{host}:{bolt_port}",
        "server.http.enabled": "false",
        "server.https.enabled": "false",
        "server.memory.pagecache.size": pagecache,
        "dbms.usage_report.enabled": "false",
        "server.logs.gc.enabled": "false",
        # a dev/test server: tests churn, and the defaults keep days of pre-allocated 256 MB logs
        "db.tx_log.preallocate": "false",
        "db.tx_log.rotation.size": "16M",
        "db.tx_log.rotation.retention_policy": "2 files",
    }


class Neo4jService(Service):
    name = "neo4j"

    @property
    def _home(self) -> Path:
        return self.dir / "home"

    def ports(self) -> list[int]:
        return [self.config.neo4j_bolt_port]

    def address(self) -> str:
        return f"bolt://{self.config.host}:{self.config.neo4j_bolt_port}"

    def requirements(self) -> None:
        java_or_fail()

    def _classpath(self) -> Path:
        return maven.fetch_classpath(
            self.config.cache_dir,
            "neo4j",
            [maven.Artifact("org.neo4j", "neo4j", self.config.neo4j_version)],
        )

    def prepare(self, report: Report) -> None:
        report(f"neo4j: resolving {self.config.neo4j_version} (Maven Central, cached)")
        self._classpath()
        for sub in ("conf", "data", "logs", "plugins", "import"):
            (self._home / sub).mkdir(parents=True, exist_ok=True)
        conf = self._home / "conf" / "neo4j.conf"
        if not conf.exists():
            conf.write_text("# settings are passed with -c by pinclip services\n")

    def argv(self) -> list[str]:
        overrides = server_overrides(
            self.config.host, self.config.neo4j_bolt_port, self.config.neo4j_pagecache
        )
        return [
            java_or_fail(),
            f"-Xmx{self.config.neo4j_heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            "-Dfile.encoding=UTF-8",
            *ADD_OPENS,
            "-cp",
            f"{self._classpath()}/*",
            "org.neo4j.server.CommunityEntryPoint",
            f"--home-dir={self._home}",
            f"--config-dir={self._home / 'conf'}",
            *(arg for k, v in overrides.items() for arg in ("-c", f"{k}={v}")),
        ]

    def probe(self) -> bool:
        """`RETURN 1` over Bolt."""
        from neo4j import GraphDatabase
        from neo4j.exceptions import Neo4jError, ServiceUnavailable

        try:
            with (
                quiet_loggers("neo4j"),
                GraphDatabase.driver(
                    self.address(), auth=None, connection_timeout=2.0, max_connection_lifetime=10
                ) as driver,
            ):
                records, _, _ = driver.execute_query("RETURN 1 AS ok")
                return bool(records) and records[0]["ok"] == 1
        except (ServiceUnavailable, Neo4jError, OSError) as exc:
            self.last_probe_error = repr(exc)
            return False
        except Exception as exc:  # the driver raises assorted errors while the server boots
            self.last_probe_error = repr(exc)
            return False

    def env(self) -> dict[str, str]:
        return {
            "PINCLIP_NEO4J_URI": self.address(),
            "PINCLIP_NEO4J_USER": "neo4j",
            "PINCLIP_NEO4J_PASSWORD": "",
        }
