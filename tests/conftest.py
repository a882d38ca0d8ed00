import os

import pytest

#: under pytest-xdist (the README's `-n auto`: one worker per core), each worker computes on one thread: two
#: workers of two threads each on 2 cores would crawl (set before torch is imported, so its pools take it)
PARALLEL_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if PARALLEL_WORKER:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"


@pytest.fixture(scope="session", autouse=True)
def sigx_test_environment(tmp_path_factory):
    """W&B off; and unless the caller chose a model cache (CI passes the fresh one its demo just filled), a
    fresh one, so that a tiny model left in ~/.cache/sigx cannot hide a broken build. Parallel workers share it
    (the cache builds each model once, under a file lock), so no model is built again in each worker."""
    mp = pytest.MonkeyPatch()
    if PARALLEL_WORKER:
        import torch

        torch.set_num_threads(1)
    if not os.environ.get("SIGX_CACHE"):
        shared = tmp_path_factory.getbasetemp()
        shared = shared.parent if PARALLEL_WORKER else shared  # the run's folder, above each worker's own
        (shared / "sigx-cache").mkdir(exist_ok=True)
        mp.setenv("SIGX_CACHE", str(shared / "sigx-cache"))
    mp.setenv("WANDB_MODE", "disabled")
    yield
    mp.undo()


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    """A working directory that must stay empty: nothing may be written beside the paths a command names."""
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    yield here
    assert not any(here.iterdir()), sorted(p.name for p in here.iterdir())
