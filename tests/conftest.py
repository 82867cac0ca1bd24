from __future__ import annotations

import os

# As app.py does, before numpy loads: one BLAS thread for small embeddings.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.llm.offline import OfflineProvider
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.settings import Settings
from storage import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = await SqliteStore.open(tmp_path / "agent.db")
    yield s
    await s.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "agent.db")


@pytest.fixture
def engine(store: SqliteStore, settings: Settings) -> Engine:
    return Engine(
        llm=OfflineProvider(),
        store=store,
        settings=settings,
        playbook=default_playbook(),
        calls=store,
    )
