"""The run summary's numbers against a hand-computed history."""

import pytest

from sigx.engine.metrics import SUMMARY_METRICS, summarize


def test_summary_of_a_hand_built_history():
    history = [
        {"step": 0, "eval/reward": 0.5, "eval/greedy_reward": 0.6},
        {"step": 10, "reward": 0.4, "step_s": 2.0, "eval/reward": 0.7, "eval/greedy_reward": 0.8},
        {"step": 20, "reward": 0.6, "step_s": 1.0},
        {"step": 30, "reward": 0.8, "step_s": 3.0, "eval/reward": 0.9, "eval/greedy_reward": 0.7},
    ]
    s = summarize(history, wall_s=12.0)
    # trapezoids: 10*(0.5+0.7)/2 + 20*(0.7+0.9)/2 = 6 + 16 = 22, over a span of 30 steps
    assert s["reward_auc"] == pytest.approx(22 / 30)
    assert (s["start_reward"], s["final_reward"], s["best_reward"]) == (0.5, 0.9, 0.9)
    assert (s["start_greedy_reward"], s["final_greedy_reward"]) == (0.6, 0.7)
    assert s["steps"] == 3 and s["final_train_reward"] == pytest.approx(0.6)
    assert s["median_step_s"] == 2.0 and s["wall_s"] == 12.0
    numbers = {k for k, v in s.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert numbers == set(SUMMARY_METRICS)  # what `sigx ablate` lets a recipe declare as its metric


def test_single_evaluation_has_its_reward_as_area():
    assert summarize([{"step": 0, "eval/reward": 0.3, "eval/greedy_reward": 0.4}], 1.0)["reward_auc"] == 0.3
