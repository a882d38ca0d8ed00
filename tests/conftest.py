import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def sigx_test_environment(tmp_path_factory):
    """W&B off; and unless the caller chose a model cache (CI passes the fresh one its demo just filled), a
    fresh one, so that a tiny model left in ~/.cache/sigx cannot hide a broken build."""
    mp = pytest.MonkeyPatch()
    if not os.environ.get("SIGX_CACHE"):
        mp.setenv("SIGX_CACHE", str(tmp_path_factory.mktemp("sigx-cache")))
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
