"""Read an ablation run store (``sigx ablate``'s output) into tables. The store is the source of truth, not W&B.

One row per planned run (cell x seed), whatever its state: ``status`` is ``done``, ``failed`` or ``missing``
(planned, never finished), so an incomplete matrix is visible downstream instead of silently averaged away.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sigx.ablation.store import cell_status
from sigx.runs import read_json, read_jsonl

# Metrics of the cell table: summary.json key (or a value derived from metrics.jsonl) -> what it is.
METRICS = {
    "final_reward": "final held-out reward",
    "reward_auc": "area under the held-out reward curve (mean reward over training)",
    "final_critique_accuracy": "GC-RL critique accuracy (last 5 steps)",
    "tokens_per_s": "generated tokens per second of training step",
}


class ReportError(ValueError):
    """A directory that is not a readable ablation run store; one line for the CLI."""


@dataclass
class Ablation:
    name: str
    root: Path
    factors: list[str]
    runs: pd.DataFrame  # one row per planned run: cell, combination, seed, status, error, <factor> 0/1, metrics
    curves: pd.DataFrame  # long format: cell, combination, seed, step, reward (held-out)

    @property
    def done(self) -> pd.DataFrame:
        return self.runs[self.runs.status == "done"]


def _throughput(rows: list[dict]) -> float | None:
    steps = [r for r in rows if "rollout_tokens_per_s" in r and "step_s" in r]
    if not steps:
        return None
    generated = sum(r["rollout_tokens_per_s"] * r["rollout_s"] for r in steps)
    return generated / sum(r["step_s"] for r in steps)


def load_ablation(root: str | Path) -> Ablation:
    root = Path(root)
    plan = read_json(root / "plan.json")
    if plan is None:
        raise ReportError(f"{root}: not an ablation run store (no plan.json); run `sigx ablate RECIPE` first")
    factors = plan["factors"]
    rows, curves = [], []
    for cell in plan["cells"]:
        row = {"cell": cell["id"], "combination": cell["combination"], "seed": cell["seed"],
               **{f: int(f in cell["factors_on"]) for f in factors}}
        summary = read_json(root / cell["id"] / "summary.json")
        status = cell_status(summary)
        if status == "pending":
            row["status"] = "missing"
        elif status == "failed":
            row.update(status="failed", error=summary.get("error", "unknown error"))
        else:
            metrics = read_jsonl(root / cell["id"] / "metrics.jsonl")
            row.update(status="done", tokens_per_s=_throughput(metrics),
                       **{k: summary.get(k) for k in METRICS if k in summary})
            curves += [{"cell": cell["id"], "combination": cell["combination"], "seed": cell["seed"],
                        "step": r["step"], "reward": r["eval/reward"]} for r in metrics if "eval/reward" in r]
        rows.append(row)
    runs = pd.DataFrame(rows)
    for column in ["error", *METRICS]:
        if column not in runs:
            runs[column] = None
    runs[list(METRICS)] = runs[list(METRICS)].astype(float)
    curves = pd.DataFrame(curves, columns=["cell", "combination", "seed", "step", "reward"])
    return Ablation(plan.get("name", root.name), root, factors, runs, curves)


def find_ablations(base: str | Path = "ablations") -> list[Path]:
    return sorted(p.parent for p in Path(base).glob("*/plan.json"))
