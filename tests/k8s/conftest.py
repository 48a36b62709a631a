from __future__ import annotations

from collections.abc import Iterator

import pytest

from multihome.k8s.client import ApiClient, Credentials
from support.fake_apiserver import FakeApiServer


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
