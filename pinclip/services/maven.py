"""Fetch a Java program and its runtime dependencies from Maven Central into our cache.

We generate a tiny pom and let `mvn dependency:copy-dependencies` resolve the graph: the same
artifacts a distribution tarball would ship, from the one Java registry these machines reach.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import structlog

log = structlog.get_logger(__name__)


class FetchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Artifact:
    group: str
    name: str
    version: str


def pom_xml(bundle: str, artifacts: list[Artifact]) -> str:
    deps = "\n".join(
        f"    <dependency><groupId>{escape(a.group)}</groupId>"
        f"<artifactId>{escape(a.name)}</artifactId><version>{escape(a.version)}</version></dependency>"
        for a in artifacts
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.pinclip</groupId>
  <artifactId>{escape(bundle)}</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


def fetch_classpath(cache_dir: Path, bundle: str, artifacts: list[Artifact]) -> Path:
    """Return a directory of jars for `bundle`, downloading once; safe across processes."""
    key = "-".join([bundle, *(a.version for a in artifacts)])
    root = cache_dir / "maven" / key
    lib = root / "lib"
    done = root / ".complete"
    if done.exists():
        return lib
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return lib
        mvn = shutil.which("mvn")
        if mvn is None:
            raise FetchError(
                "Maven (`mvn`) is not installed; install it (Debian: apt-get install -y maven)."
            )
        if shutil.which("java") is None:
            raise FetchError(
                "Java is not installed; install a JDK 17 (apt-get install -y "
                "openjdk-17-jre-headless)."
            )
        shutil.rmtree(lib, ignore_errors=True)
        (root / "pom.xml").write_text(pom_xml(bundle, artifacts))
        log.info("fetching from Maven Central", bundle=bundle)
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                "-DoutputDirectory=lib",
            ],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise FetchError(f"mvn failed to fetch {bundle}:\n{tail}")
        done.touch()
    return lib
