"Shared fixtures for the cross-notebook tests."
import os
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def find_data_dir() -> Path:
    "The task data: env `FPT_DATA_DIR`, else `../shared/data` beside the checkout; a clear failure (never a skip) if missing."
    d = Path(os.environ.get('FPT_DATA_DIR') or ROOT.parent/'shared'/'data')
    if not (d/'mnli').is_dir():
        pytest.fail(f"task data not found at {d} (expected a folder holding mnli/, qqp/, squad_v2/, record/, xsum/): "
                    "set FPT_DATA_DIR or put the data at ../shared/data beside the checkout", pytrace=False)
    return d

@pytest.fixture(scope='session')
def data_dir() -> Path: return find_data_dir()
