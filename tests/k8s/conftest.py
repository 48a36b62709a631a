from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_apiserver import FakeApiServer

from multihome.k8s.client import ApiClient, Credentials


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    server = FakeApiServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api(apiserver: FakeApiServer) -> Iterator[ApiClient]:
    client = ApiClient(Credentials(server=apiserver.url), timeout_s=5.0)
    try:
        yield client
    finally:
        client.close()
