"""Start, stop and describe the set of local services as one unit."""

from __future__ import annotations

import shlex
from concurrent.futures import ThreadPoolExecutor

from pinclip.services.base import Report, Service, ServiceError, ServiceStatus
from pinclip.services.config import ServicesConfig
from pinclip.services.kafka import KafkaService
from pinclip.services.milvus import MilvusServerService
from pinclip.services.neo4j import Neo4jService

SERVICE_NAMES = ("kafka", "neo4j", "milvus")


def build_services(config: ServicesConfig, only: list[str] | None = None) -> list[Service]:
    services: list[Service] = [KafkaService(config), Neo4jService(config)]
    if config.enable_milvus:
        services.append(MilvusServerService(config))
    if only:
        unknown = set(only) - set(SERVICE_NAMES)
        if unknown:
            raise ServiceError(f"unknown service(s) {sorted(unknown)}; known: {SERVICE_NAMES}")
        services = [s for s in services if s.name in only]
    return services


def up(services: list[Service], report: Report) -> None:
    """Start every service that is not running, then wait until each answers a real request.

    All processes start first and become ready in parallel; a failure stops what this call
    started so a half-up set never lingers.
    """
    started: list[Service] = []
    try:
        for service in services:
            if service.start(report):
                started.append(service)
        for service in services:
            service.wait_ready(report)
    except BaseException:
        for service in started:
            service.stop()
        raise


def down(services: list[Service], report: Report) -> list[str]:
    """Stop exactly the processes we started, all at once (each waits out its own graceful
    shutdown: Milvus alone takes ~25 s). Returns the names that refused to stop."""
    running = {service.name: service.is_running() for service in services}
    with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
        stopped = list(pool.map(lambda service: service.stop(), services))
    failed = []
    for service, ok in zip(services, stopped, strict=True):
        if ok and running[service.name]:
            report(f"{service.name}: stopped (process exited)")
        elif ok:
            report(
                f"{service.name}: not started here; {service.address()} answers, left running"
                if service.answers_elsewhere()
                else f"{service.name}: not running"
            )
        else:
            failed.append(service.name)
            report(f"{service.name}: FAILED to stop (pid file kept: {service.pid_file})")
    return failed


def statuses(services: list[Service]) -> list[ServiceStatus]:
    return [s.status() for s in services]


def env_lines(services: list[Service]) -> list[str]:
    lines = []
    for service in services:
        for key, value in service.env().items():
            lines.append(f"export {key}={shlex.quote(value)}")
    return lines
