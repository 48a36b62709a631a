"""The console app on a store file under the test's tmp dir, through Flask's test client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from multihome.console.app import create_app
from support.console_client import fixed_topology


@pytest.fixture
def store_file(tmp_path: Path) -> str:
    return str(tmp_path / "store.db")


@pytest.fixture
def client(store_file: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
           ) -> Iterator[FlaskClient]:
    monkeypatch.setenv("MULTIHOME_STATE_DIR", str(tmp_path / "state"))
    app = create_app(store_file, topology_source=fixed_topology)
    app.config["TESTING"] = True
    with app.test_client() as c:
        yield c
