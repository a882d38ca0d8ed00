"""What a GRPO step and a run report, computed from their trajectories and history: pure functions, so that the
trainer (:mod:`sigx.engine.trainer`) holds the GRPO stages only."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from sigx.engine.trajectory import RolloutBatch, Trajectory


@dataclass(frozen=True)
class Room:
    """One measure of whether a mechanism has room to act in a run (SORL needs turns, SSPO off-policy ratios,
    GC-RL a critic above chance ...): a metric of the declaring side's step rows, summarised over the run, and
    what it says. The engine declares its own (ENGINE_ROOM), a technique its own (``Technique.room``); each run
    writes the values into its summary (``room``), where the report reads them."""

    key: str  # the metric in the declaring side's rows (a technique's without its "<name>/" prefix)
    how: Literal["mean", "first"]  # mean over the steps that have it, or its first value
    about: str


#: the engine's room measures, one report column each
ENGINE_ROOM = {
    "turns": Room("turns", "mean", "model turns per response, mean over steps (SORL's turn ratio differs from the "
                  "sequence's only with 2 or more)"),
    "clip_fraction": Room("clip_fraction", "mean", "tokens (or turns) whose ratio the clip cut, mean over steps"),
    "log_ratio_abs": Room("log_ratio_abs", "mean", "|log pi/pi_behaviour| over trained tokens: how off-policy"),
    "zero_variance_groups": Room("zero_variance_groups", "mean", "share of groups whose rewards all tie (no "
                                 "signal)"),
}


def room_values(rows: list[dict], declared: dict[str, Room]) -> dict[str, dict]:
    """``{column: {"value": v, "about": text}}`` for each declared measure that ``rows`` hold (None when none)."""
    out = {}
    for column, room in declared.items():
        values = [r[room.key] for r in rows if isinstance(r.get(room.key), (int, float))
                  and not isinstance(r.get(room.key), bool) and math.isfinite(r[room.key])]
        value = (values[0] if room.how == "first" else statistics.fmean(values)) if values else None
        out[column] = {"value": value, "about": room.about}
    return out


def own_rows(history: list[dict], name: str) -> list[dict]:
    """A technique's own metrics out of the run's history, without the ``<name>/`` prefix the trainer logs them
    under (each row keeps its ``step``): what the technique's ``summary`` and room read."""
    prefix = f"{name}/"
    return [{"step": r.get("step"), **{k[len(prefix):]: v for k, v in r.items() if k.startswith(prefix)}}
            for r in history]


def step_metrics(trajectories: list[Trajectory], advantages: torch.Tensor, update: dict, rollout_s: float,
                 train_s: float, inner_epochs: int) -> dict:
    """One step's row of ``metrics.jsonl`` (before the techniques' own): rewards and their spread over the
    responses (GC-RL's critiques are not responses), the update's diagnostics, timings and throughput."""
    gen = [x for x in trajectories if x.kind == "generation"]
    rewards = torch.tensor([x.outcome_reward for x in gen])
    group_std = [torch.tensor([x.outcome_reward for x in gen if x.group == g]).std().item()
                 for g in sorted({x.group for x in gen})]
    generated = sum(sum(x.loss_mask) for x in trajectories)
    return {
        "reward": rewards.mean().item(),
        "shaped_reward": sum(x.reward for x in gen) / len(gen),
        "accuracy": sum(x.correct for x in gen) / len(gen),
        "zero_variance_groups": sum(s == 0 for s in group_std) / len(group_std),
        "response_tokens": sum(sum(x.loss_mask) for x in gen) / len(gen),
        "turns": sum(x.num_turns for x in gen) / len(gen),
        "truncated": sum(x.truncated for x in gen) / len(gen),
        "advantage_abs": advantages.abs().mean().item(),
        **update,
        "rollout_s": rollout_s,
        "train_s": train_s,
        "step_s": rollout_s + train_s,
        "rollout_tokens_per_s": generated / max(rollout_s, 1e-9),
        "train_tokens_per_s": generated * inner_epochs / max(train_s, 1e-9),
    }


def logprob_gap(batch: RolloutBatch) -> float:
    """Mean |log-prob the rollout engine reported - log-prob the trainer computes| over generated tokens before
    any update: 0 up to numerics when the engine samples the trained weights (NaN when it reports none). A gap
    that grows means the engine is stale or numerically different (or ``top_p`` < 1: the engine's log-probs are
    renormalised over the nucleus, the trainer's are not); the importance ratio never uses it."""
    reported = batch.sampling_logprobs
    if reported is None:
        return math.nan
    mask = (batch.loss_mask > 0) & ~torch.isnan(reported) & ~torch.isnan(batch.old_logprobs)
    if not mask.any():
        return math.nan
    return float((reported[mask] - batch.old_logprobs[mask]).abs().mean())


def per_set_metrics(sampled: list[Trajectory], greedy: list[Trajectory]) -> dict:
    """``eval/<set>/<measure>`` (sampled) and ``eval/<set>/greedy_<measure>`` for every held-out set that the
    task names in ``problem.meta["source"]`` (a QA task's NQ, HotpotQA, ...): the reward and the task's own
    measures of each answer (e.g. ``em``, ``acc``). Empty for a task with one unnamed held-out set."""
    out = {}
    for prefix, trajectories in (("", sampled), ("greedy_", greedy)):
        by_set: dict[str, list[Trajectory]] = {}
        for t in trajectories:
            if t.problem.meta.get("source"):
                by_set.setdefault(t.problem.meta["source"], []).append(t)
        for name, group in by_set.items():
            out[f"eval/{name}/{prefix}reward"] = sum(t.outcome_reward for t in group) / len(group)
            for key in group[0].info.get("metrics", {}):
                out[f"eval/{name}/{prefix}{key}"] = sum(t.info["metrics"][key] for t in group) / len(group)
    return out


#: the numbers :func:`summarize` writes into every run's summary.json: what an ablation may declare as its metric
#: (``ablation.metric``), beside a technique's own (:attr:`sigx.engine.hooks.Technique.summary_metrics`)
SUMMARY_METRICS = ("steps", "start_reward", "final_reward", "best_reward", "reward_auc", "start_greedy_reward",
                   "final_greedy_reward", "final_train_reward", "median_step_s", "wall_s")


def summarize(history: list[dict], wall_s: float) -> dict:
    evals = [(r["step"], r["eval/reward"]) for r in history if "eval/reward" in r]
    greedy = [r["eval/greedy_reward"] for r in history if "eval/greedy_reward" in r]
    train_rewards = [r["reward"] for r in history if "reward" in r]
    steps, rewards = zip(*evals)
    # Area under the held-out reward curve (trapezoid rule), normalised by the step span: the mean reward
    # over training.
    auc = float(np.trapezoid(rewards, steps)) / (steps[-1] - steps[0]) if len(evals) > 1 else rewards[0]
    step_times = [r["step_s"] for r in history if "step_s" in r]
    return {
        "status": "completed",
        "steps": len(train_rewards),
        "start_reward": evals[0][1],
        "final_reward": evals[-1][1],
        "best_reward": max(r for _, r in evals),
        "reward_auc": auc,
        "start_greedy_reward": greedy[0],
        "final_greedy_reward": greedy[-1],
        "final_train_reward": sum(train_rewards[-5:]) / max(1, len(train_rewards[-5:])),
        "median_step_s": statistics.median_high(step_times) if step_times else math.nan,
        "wall_s": wall_s,
    } | _final_per_set(history)


def _final_per_set(history: list[dict]) -> dict:
    """The last evaluation's per-set measures, as ``{"final_eval_sets": {set: {measure: value}}}``."""
    last = next((r for r in reversed(history) if "eval/reward" in r), {})
    sets: dict[str, dict] = {}
    for key, value in last.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "eval":
            sets.setdefault(parts[1], {})[parts[2]] = value
    return {"final_eval_sets": sets} if sets else {}
