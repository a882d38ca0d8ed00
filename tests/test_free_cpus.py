"""How many threads `sigx train` takes: the cores not busy now, measured over a short window, not the 1-minute
load average (which still counts a command that has just ended, such as the README's `pip install`)."""

import os
import sys

import pytest

import sigx.cli as cli


@pytest.fixture
def machine(monkeypatch):
    """A 2-core machine whose /proc/stat reads the given (busy, total) ticks in turn, and whose load average
    says both cores are busy (as it did right after `pip install`)."""
    def with_ticks(*samples):
        ticks = iter(samples)
        monkeypatch.setattr(cli, "cpu_ticks", lambda: next(ticks))
        monkeypatch.setattr(cli.time, "sleep", lambda seconds: None)
        monkeypatch.setattr(os, "cpu_count", lambda: 2)
        monkeypatch.setattr(os, "getloadavg", lambda: (1.9, 1.5, 0.7))
    return with_ticks


@pytest.mark.parametrize("busy_ticks, free", [(0, 2), (5, 2), (20, 1), (40, 1)],
                         ids=["idle", "a little busy", "one core busy", "both busy"])
def test_free_cores_are_the_ones_idle_over_the_window_whatever_the_load_average(machine, busy_ticks, free):
    machine((1000, 5000), (1000 + busy_ticks, 5040))  # 40 ticks: 2 cores x 0.2 s at 100 ticks a second
    assert cli.free_cpus() == free


def test_without_proc_stat_the_load_average_decides(machine):
    machine(None)
    assert cli.free_cpus() == 1  # 2 cores, load average 1.9: at least one thread, always


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_proc_stat_reads_as_busy_and_total_ticks_that_only_grow():
    first = cli.cpu_ticks()
    second = cli.cpu_ticks()
    assert all(isinstance(x, int) for x in first + second)
    assert 0 <= first[0] <= first[1] and first[0] <= second[0] and first[1] <= second[1]
    assert 1 <= cli.free_cpus(window_s=0.05) <= (os.cpu_count() or 1)
