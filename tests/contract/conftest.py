"""The backends the conformance suite runs over: every implementation and every wrapper."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from devkit.azurite import Azurite
from engine.sink.backend import Backend
from engine.sink.backends.azure import AzureBackend
from engine.sink.backends.local import LocalBackend
from engine.sink.backends.memory import MemoryBackend
from engine.sink.wrappers import FaultyBackend, MetricsBackend, RetryingBackend, stack_backend

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("local", id="local"),
    pytest.param("azurite", id="azurite", marks=pytest.mark.azurite),
    pytest.param("retrying+memory", id="retrying+memory"),
    pytest.param("metrics+local", id="metrics+local"),
    pytest.param("faulty+memory", id="faulty+memory"),
    pytest.param("stack+azurite", id="stack+azurite", marks=pytest.mark.azurite),
]


def make_backend(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Backend:
    if kind == "memory":
        return MemoryBackend()
    if kind == "local":
        return LocalBackend(tmp_path / "repo")
    if kind == "azurite":
        az: Azurite = request.getfixturevalue("azurite")
        return AzureBackend("contract", f"t-{uuid4().hex}", connection_string=az.connection_string)
    if kind == "retrying+memory":
        return RetryingBackend(MemoryBackend(), wait_max=0)
    if kind == "metrics+local":
        return MetricsBackend(LocalBackend(f"file://{tmp_path / 'repo'}"))
    if kind == "faulty+memory":
        return FaultyBackend(MemoryBackend())
    if kind == "stack+azurite":
        return stack_backend(make_backend("azurite", tmp_path, request), wait_max=0)
    raise AssertionError(kind)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    be = make_backend(request.param, tmp_path, request)
    yield be
    if isinstance(be, FaultyBackend):
        be.assert_all_fired()
    be.close()
