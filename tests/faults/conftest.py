"""Fault tests run on a PRIVATE set of Kafka, Neo4j and the Milvus server (free ports, a temp
state dir), which they stop, kill and restart; the shared services other tests use are never
touched. One set serves the whole `tests/faults` package and is always torn down after its last
test, failed or not."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from pinclip.services.private import PrivateServices

from .faultkit import FaultRun

ATTACH_VAR = "PINCLIP_FAULT_SERVICES_DIR"


@pytest.fixture(scope="package")
def private_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateServices]:
    """A fresh private set; or, with PINCLIP_FAULT_SERVICES_DIR, the set a developer started
    with `python -m pinclip.services.private up DIR` (kept up, logs kept, between runs)."""
    attach = os.environ.get(ATTACH_VAR)
    if attach:
        yield PrivateServices.attach(Path(attach))
        return
    if shutil.which("java") is None or importlib.util.find_spec("milvus") is None:
        pytest.skip(  # a failure in CI (tests/conftest.py), where both are installed
            "private services need Java 17 and the `milvus` package (docs/services.md)"
        )
    with PrivateServices(tmp_path_factory.mktemp("private-services")) as services:
        yield services


@pytest.fixture(scope="package")
def registry(
    tmp_path_factory: pytest.TempPathFactory, export_tiny_model: Callable[..., int]
) -> Path:
    root = tmp_path_factory.mktemp("fault-registry")
    export_tiny_model(root, 1)
    return root


@pytest.fixture
def services(private_services: PrivateServices) -> Iterator[PrivateServices]:
    """The private set, every service answering before the test and again after it (a test
    that failed half-way through an outage must not leave the next one without a broker)."""
    ensure_all_up(private_services)
    yield private_services
    ensure_all_up(private_services)


def ensure_all_up(services: PrivateServices) -> None:
    for name in services.services:
        if not services.is_running(name):
            services.start(name)


@pytest.fixture
def fault_run(
    services: PrivateServices, registry: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., FaultRun]]:
    """`fault_run(name, **config)`: one scenario's topics, group, ids and collections; its
    worker processes are stopped afterwards and their logs shown if the test failed."""
    runs: list[FaultRun] = []

    def build(name: str, **overrides: object) -> FaultRun:
        run = FaultRun.create(services, registry, tmp_path / name, name, **overrides)
        runs.append(run)
        return run

    yield build
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for run in runs:
        run.close()
        if failed:
            print(run.worker_log_tails())
    if failed:
        print(services.log_tails())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep the call phase's report on the item, so fixtures can tell a failed test."""
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
