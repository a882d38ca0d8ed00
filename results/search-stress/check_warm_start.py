"""Is this machine's build of the flagship's warm start the one its archived runs started from?

Why: the sigx/tiny warm start is rebuilt on each machine from the recipe, and the build's floating point depends on
the machine: on 2026-12-02 a fresh machine whose CPU has AVX2 only (the earlier ones had AVX-512) built W11
(`4f0ccf8198b53922`) with other weights, from the same code and libraries. The flagship's runs were archived
before sigx recorded a digest of the build (`base_weights`, which `sigx ablate` now checks), so this compares what
every archived run recorded before its first step: the held-out evaluation of the base model (reward AUC's first
point, sampled and greedy), made with a fixed seed and the same in all of them. Nothing of a run's outcome is read.

    python results/search-stress/check_warm_start.py [recipe] [archive]      (exit 0: the same; 1: not; 2: unusable)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def recorded(archive: Path) -> set[tuple[float, float]]:
    """The base model's evaluation as each archived run recorded it (one pair, if they all started alike)."""
    pairs = set()
    for path in archive.glob("*/seed*/summary.json"):
        summary = json.loads(path.read_text())
        if summary.get("status") == "completed":
            pairs.add((summary["start_reward"], summary["start_greedy_reward"]))
    return pairs


def main() -> int:
    recipe_path = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[1] / "recipes" / "search-stress.yaml"
    archive = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / "archive"
    pairs = recorded(archive)
    if len(pairs) != 1:
        print(f"{archive}: {len(pairs)} different base-model evaluations among the archived runs; expected one")
        return 2
    (sampled, greedy), = pairs

    from sigx.config import load_recipe
    from sigx.provenance import machine_kind
    from sigx.train import _engine_and_trainer

    recipe = load_recipe(recipe_path)
    engine, trainer = _engine_and_trainer(recipe, None, log=lambda message: print(message, file=sys.stderr))
    here = trainer.evaluate()
    mine = (here["eval/reward"], here["eval/greedy_reward"])
    where = f"this machine (CPU kernels {machine_kind()['cpu']}, weights {engine.base_weights})"
    if mine == (sampled, greedy):
        print(f"same warm start: {where} evaluates the base model as the archived runs recorded ({sampled}, {greedy})")
        return 0
    print(f"another build of the warm start: {where} evaluates the base model at {mine}, the archived runs "
          f"recorded ({sampled}, {greedy}); do not run the flagship's remaining cells here")
    return 1


if __name__ == "__main__":
    sys.exit(main())
