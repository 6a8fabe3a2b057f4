"""Fixtures shared across the suite: synthetic boards and a tiny model trained on them (built once per session),
and the service over SQLite or PostgreSQL (the API, storage, report and contract tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from tests.support.databases import scratch_postgres
from tests.support.service import FakeInspector, Service, send_key_on_reads

from aoi.api import ServiceSettings, create_app
from aoi.data.synthetic import make_pair, write_deeppcb_layout
from aoi.storage import Storage
from aoi.storage.keys import create_api_key


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small DeepPCB-layout dataset of synthetic boards in two groups."""
    root = tmp_path_factory.mktemp("synthetic-deeppcb")
    rng = np.random.default_rng(7)
    write_deeppcb_layout([make_pair(rng, n_defects=(3, 6)) for _ in range(14)], root, group="group90000")
    write_deeppcb_layout([make_pair(rng, n_defects=(3, 6), misalign=True) for _ in range(6)], root, group="group91000")
    return root


@pytest.fixture(scope="session")
def tiny_bundle(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model bundle trained for one short run on the synthetic boards: checks plumbing, not accuracy."""
    pytest.importorskip("torch")
    from aoi.training.recipe import TrainRecipe
    from aoi.training.samples import AugmentConfig
    from aoi.training.trainer import train

    recipe = TrainRecipe(
        version="tiny-test",
        list_file="list.txt",
        validation_groups=("group91000",),
        epochs=2,
        batch_size=64,
        augment=AugmentConfig(variants=0),
        workers=1,
    )
    out = tmp_path_factory.mktemp("tiny-train")
    bundle = train(recipe, synthetic_root, out, log=lambda _m: None)
    return bundle.path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A uniquely named database on the local PostgreSQL, dropped after the session."""
    with scratch_postgres("aoi_test") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    if backend == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def storage(tmp_path: Path, database_url: str | None) -> Iterator[Storage]:
    store = Storage.open(tmp_path / "data", database_url)
    if not store.db.is_sqlite:  # one database per session: empty it for this test
        with store.db.transaction() as session:
            tables = "defects, inspections, inspection_failures, products, api_keys, idempotency_keys"
            session.execute(text(f"TRUNCATE {tables} CASCADE"))
    yield store
    store.close()


@pytest.fixture
def service(storage: Storage, tmp_path: Path, backend: str) -> Iterator[Service]:
    inspector = FakeInspector()
    settings = ServiceSettings(data_dir=storage.data_dir, max_upload_bytes=2_000_000, serve_dashboard=False)
    app = create_app(settings, inspector=inspector, storage=storage)
    with storage.db.transaction() as session:
        key = create_api_key(session, label="tester")
    with TestClient(app) as client:
        send_key_on_reads(client, key)
        yield Service(client, storage, inspector, key, storage.data_dir, backend)
