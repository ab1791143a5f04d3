from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCENARIO_FILES = sorted((ROOT / "scenarios").glob("*.toml"))


@pytest.fixture
def root():
    return ROOT
