"""Shared fixtures and the hypothesis profile. Keep this small; put helpers in their own modules."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = ROOT / "hardware" / "networks"
LI_MAO = NETWORKS / "li-mao-2024.toml"

# tests/ on the path, so test modules can `import strategies` however pytest imports them
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Shared 2-core machines: no per-example deadline; example counts are set per test and kept
# modest (strategies.examples). The default profile is derandomized and keeps no example
# database, so `make test` draws the same examples on every machine and in CI: the suite cannot
# fail by chance. HYPOTHESIS_PROFILE=thorough explores: random draws, 20x as many examples.
_common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("insitu", derandomize=True, database=None, **_common)
settings.register_profile("thorough", **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "insitu"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def li_mao_path() -> Path:
    return LI_MAO


@pytest.fixture(autouse=True)
def _own_run_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """A command that records by default ($INSITU_STORE or ./runs/insitu.sqlite) records into
    a store of the test's own, never into the checkout's runs/ (subprocesses inherit it)."""
    monkeypatch.setenv("INSITU_STORE", str(tmp_path_factory.mktemp("store") / "insitu.sqlite"))
