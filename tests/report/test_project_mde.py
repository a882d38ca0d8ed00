"""results/search-stress/project_mde.py: an MDE projected from the design alone equals the balanced formula."""

import json
import math

import pytest
from scipy import stats

from results_script import load_results_script
from sigx.runs import write_json_atomic


@pytest.fixture(scope="module")
def project():
    return load_results_script("search-stress", "project_mde.py")


def test_a_paired_design_gives_the_paired_mde_at_the_declared_sd(project, tmp_path):
    """Two cells (baseline, sspo) x 6 seeds blocked by seed: the effect's SE is SD x sqrt(2/6) at n - 1 df, whatever
    SD the planted values have (the projection scales it to the declared report's)."""
    seeds = range(6)
    cells = [{"id": f"{c}/seed{s}", "combination": c, "factors_on": [] if c == "baseline" else ["sspo"],
              "techniques": [], "seed": s} for c in ("baseline", "sspo") for s in seeds]
    write_json_atomic(tmp_path / "plan.json", {"name": "p", "factors": ["sspo"], "seeds": list(seeds), "cells": cells})
    for i, cell in enumerate(cells):
        auc = 0.3 + 0.05 * cell["seed"] + 0.01 * ((i * 7) % 5)  # seed-to-seed and residual variation
        write_json_atomic(tmp_path / cell["id"] / "summary.json",
                          {"status": "completed", "final_reward": auc, "reward_auc": auc})
    done, mdes = project.main_effect_mdes(tmp_path)
    n, df = 6, 5
    expected = (stats.t.ppf(1 - 0.05 / 2, df) + stats.t.ppf(0.8, df)) * project.DECLARED_SD * math.sqrt(2 / n)
    assert done == 12 and mdes == {"sspo": pytest.approx(expected, rel=1e-9)}
    assert project.DECLARED_SD == json.loads((project.HERE / "search-stress" / "report.json").read_text())["residual_sd"]
