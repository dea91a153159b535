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

@pytest.fixture
def one_thread():
    "Torch on one thread for the test (results and timings that do not hang on the machine's cores), the caller's count put back after."
    import torch
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def sigterm_in_step(monkeypatch, n:int, times:int=1):
    """SIGTERM this process `times` times inside the `n`-th training step from now (at its gradient clip): the trainer's
    handler finishes the step, checkpoints it and stops the run, as a scheduler's SIGTERM would."""
    import signal, torch
    clip, calls = torch.nn.utils.clip_grad_norm_, [0]
    def term(*a, **k):
        calls[0] += 1
        if calls[0] == n:
            for _ in range(times): os.kill(os.getpid(), signal.SIGTERM)
        return clip(*a, **k)
    monkeypatch.setattr(torch.nn.utils, 'clip_grad_norm_', term)
