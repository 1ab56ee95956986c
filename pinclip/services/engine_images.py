"""The images CI builds for itself, since no image registry is reachable: a Debian base from
debootstrap (built once per machine), the stand-ins of compose/standins/ (Kafka and Neo4j from
Maven Central jars, Milvus from PyPI, etcd from Debian, a MinIO placeholder) and the app's
serving and trainer images from compose/Dockerfile.

Everything is cached on the machine: the base image is rebuilt only when its inputs change
(suite, mirror, packages, the host's extra CA certificates), and every `podman build` reuses
its layer cache, so a warm run takes seconds. Images replaced by a rebuild are pruned.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from pinclip.services import maven
from pinclip.services.config import ServicesConfig
from pinclip.services.engine import REPO_ROOT, EngineConfig, EngineError, podman, podman_env
from pinclip.services.kafka import SLF4J_RELOAD4J

Report = Callable[[str], None]
STANDINS = REPO_ROOT / "compose" / "standins"
BASE_PACKAGES = ("ca-certificates", "python3", "python3-venv")
HOST_EXTRA_CAS = Path("/usr/local/share/ca-certificates")
MILVUS_PYPI_VERSION = "2.3.5"
ETCD_TAG = "3.4"


@dataclass
class Timings:
    """Seconds per build step, in order, for the summary table and docs/BENCHMARKS.md."""

    steps: list[tuple[str, float]] = field(default_factory=list)

    def timed(self, name: str, action: Callable[[], object]) -> None:
        started = time.monotonic()
        action()
        self.steps.append((name, time.monotonic() - started))

    def table(self) -> str:
        rows = [f"| {name} | {seconds:.1f} |" for name, seconds in self.steps]
        total = sum(seconds for _, seconds in self.steps)
        return "\n".join(
            ["| step | seconds |", "| --- | ---: |", *rows, f"| total | {total:.1f} |"]
        )


@dataclass(frozen=True)
class ImageNames:
    """Tags of everything built; printed by `pinclip engine env` under compose's and the test
    fixtures' variable names (their defaults stay the upstream images)."""

    prefix: str
    kafka_version: str
    neo4j_version: str

    def tag(self, name: str, version: str) -> str:
        return f"{self.prefix}/{name}:{version}"

    @property
    def base(self) -> str:
        return self.tag("debian", "python3")

    @property
    def jre(self) -> str:
        return self.tag("jre", "17")

    def standins(self) -> dict[str, str]:
        return {
            "kafka": self.tag("kafka", self.kafka_version),
            "neo4j": self.tag("neo4j", self.neo4j_version),
            "milvus": self.tag("milvus", MILVUS_PYPI_VERSION),
            "etcd": self.tag("etcd", ETCD_TAG),
            "minio": self.tag("minio", "placeholder"),
        }

    def app(self) -> dict[str, str]:
        return {
            "serving": self.tag("pinclip-stream", "serving"),
            "trainer": self.tag("pinclip-stream", "trainer"),
        }

    def env(self) -> dict[str, str]:
        standins, app = self.standins(), self.app()
        return {
            "KAFKA_IMAGE": standins["kafka"],
            "NEO4J_IMAGE": standins["neo4j"],
            "MILVUS_IMAGE": standins["milvus"],
            "ETCD_IMAGE": standins["etcd"],
            "MINIO_IMAGE": standins["minio"],
            "SERVING_IMAGE": app["serving"],
            "TRAINER_IMAGE": app["trainer"],
            "APP_BASE_IMAGE": self.base,
            "PINCLIP_TEST_KAFKA_IMAGE": standins["kafka"],
            "PINCLIP_TEST_NEO4J_IMAGE": standins["neo4j"],
            "PINCLIP_TEST_MILVUS_IMAGE": standins["milvus"],
        }


def image_names(config: EngineConfig, services: ServicesConfig | None = None) -> ImageNames:
    services = services or ServicesConfig.model_validate({})
    return ImageNames(config.image_prefix, services.kafka_version, services.neo4j_version)


def base_key(config: EngineConfig) -> str:
    """What the base image is made of; a change rebuilds it."""
    digest = hashlib.sha256()
    for part in (config.debian_suite, config.debian_mirror, *BASE_PACKAGES):
        digest.update(part.encode() + b"\0")
    for cert in sorted(HOST_EXTRA_CAS.glob("*.crt")) if HOST_EXTRA_CAS.is_dir() else []:
        digest.update(cert.read_bytes())
    return digest.hexdigest()[:16]


def image_label(image: str, label: str) -> str | None:
    out = podman(
        "image", "inspect", "--format", f'{{{{index .Labels "{label}"}}}}', image, check=False
    )
    return out.strip() or None


def build_base(config: EngineConfig, names: ImageNames, report: Report) -> bool:
    """debootstrap a minimal Debian with Python, trusting the host's extra CAs (a TLS-inspecting
    egress proxy must be trusted inside builds too); import it as one layer. Returns True when
    it had to be built."""
    key = base_key(config)
    if image_label(names.base, "io.pinclip.base-key") == key:
        report(f"engine: base image {names.base} cached")
        return False
    rootfs = config.cache_dir / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    report(f"engine: debootstrap {config.debian_suite} (once per machine)")
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            config.debian_suite,
            str(rootfs),
            config.debian_mirror,
        ]
    )
    try:
        if HOST_EXTRA_CAS.is_dir():
            for cert in HOST_EXTRA_CAS.glob("*.crt"):
                shutil.copy(cert, rootfs / "usr/local/share/ca-certificates" / cert.name)
            _run(["chroot", str(rootfs), "update-ca-certificates"])
        _run(["chroot", str(rootfs), "apt-get", "clean"])
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        changes = ["--change", f"LABEL io.pinclip.base-key={key}", "--change", "CMD /bin/bash"]
        imported = subprocess.run(
            ["podman", "import", "-q", *changes, "-", names.base],
            stdin=tar.stdout,
            env=podman_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        tar.wait()
        if imported.returncode != 0:
            raise EngineError(f"podman import failed: {imported.stderr[-2000:]}")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return True


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise EngineError(f"{' '.join(argv)} failed:\n{(result.stdout + result.stderr)[-3000:]}")


def build(
    tag: str,
    context: Path,
    args: dict[str, str],
    dockerfile: Path | None = None,
    target: str | None = None,
) -> None:
    argv = ["build", "--layers", "-t", tag]
    argv += [f"--build-arg={key}={value}" for key, value in args.items()]
    argv += ["-f", str(dockerfile)] if dockerfile else []
    argv += ["--target", target] if target else []
    podman(*argv, str(context), timeout=3600)


def standin_context(config: EngineConfig, name: str, jars: Path | None = None) -> Path:
    """compose/standins/<name> plus, for the Java ones, lib/ from the Maven cache."""
    context = config.cache_dir / "contexts" / name
    shutil.copytree(STANDINS / name, context, dirs_exist_ok=True)
    if jars is not None:
        lib = context / "lib"
        wanted = {jar.name for jar in jars.glob("*.jar")}
        for stale in lib.glob("*.jar") if lib.is_dir() else []:
            if stale.name not in wanted:
                stale.unlink()
        lib.mkdir(exist_ok=True)
        for jar in jars.glob("*.jar"):
            if not (lib / jar.name).exists():
                shutil.copy2(jar, lib / jar.name)
    return context


def build_standins(
    config: EngineConfig,
    names: ImageNames,
    services: ServicesConfig,
    timings: Timings,
    report: Report,
) -> None:
    tags = names.standins()
    base = {"BASE_IMAGE": names.base}
    kafka_jars = maven.fetch_classpath(
        services.cache_dir,
        "kafka",
        [maven.Artifact("org.apache.kafka", "kafka_2.13", services.kafka_version), SLF4J_RELOAD4J],
    )
    neo4j_jars = maven.fetch_classpath(
        services.cache_dir, "neo4j", [maven.Artifact("org.neo4j", "neo4j", services.neo4j_version)]
    )
    steps: list[tuple[str, Callable[[], None]]] = [
        ("jre", lambda: build(names.jre, standin_context(config, "jre"), base)),
        (
            "kafka",
            lambda: build(
                tags["kafka"],
                standin_context(config, "kafka", kafka_jars),
                {"JRE_IMAGE": names.jre, "KAFKA_VERSION": services.kafka_version},
            ),
        ),
        (
            "neo4j",
            lambda: build(
                tags["neo4j"],
                standin_context(config, "neo4j", neo4j_jars),
                {"JRE_IMAGE": names.jre, "NEO4J_VERSION": services.neo4j_version},
            ),
        ),
        (
            "milvus",
            lambda: build(
                tags["milvus"],
                standin_context(config, "milvus"),
                {**base, "MILVUS_PYPI_VERSION": MILVUS_PYPI_VERSION},
            ),
        ),
        ("etcd", lambda: build(tags["etcd"], standin_context(config, "etcd"), base)),
        ("minio", lambda: build(tags["minio"], standin_context(config, "minio"), base)),
    ]
    for name, step in steps:
        report(f"engine: building stand-in {name}")
        timings.timed(f"stand-in {name}", step)


def build_app(names: ImageNames, timings: Timings, report: Report) -> None:
    dockerfile = REPO_ROOT / "compose" / "Dockerfile"
    for target, tag in names.app().items():
        report(f"engine: building app image {tag} (compose/Dockerfile --target {target})")
        args = {"BASE_IMAGE": names.base}
        timings.timed(f"app {target}", partial(build, tag, REPO_ROOT, args, dockerfile, target))


def build_all(config: EngineConfig, report: Report, app: bool = True) -> Timings:
    services = ServicesConfig.model_validate({})
    names = image_names(config, services)
    timings = Timings()
    timings.timed("base image", lambda: build_base(config, names, report))
    build_standins(config, names, services, timings, report)
    if app:
        build_app(names, timings, report)
    timings.timed("prune replaced images", lambda: podman("image", "prune", "-f"))
    return timings
