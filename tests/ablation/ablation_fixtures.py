"""What the ablation tests share: a very small recipe (a cell takes about a second, so the store logic is what is
tested), its file, and the published cells' summaries."""

import json
from pathlib import Path

import yaml

from sigx.config import recipe_from_data

RECIPES = Path(__file__).parents[2] / "recipes"
# A very small model and very short runs: a cell takes about a second, so the store logic is what is tested.
SMALL = {
    "name": "abl-test",
    "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1,
                       "intermediate_size": 64, "sft_steps": 20}},
    "task": {"name": "arithmetic", "eval_prompts": 8},
    "rollout": {"group_size": 2, "max_new_tokens": 24},
    "training": {"steps": 3, "prompts_per_step": 2, "eval_every": 3, "eval_samples": 1},
    "ablation": {"factors": ["sspo", "sorl"], "seeds": [0]},
    "logging": {"wandb": "disabled"},
}


def small_recipe(tmp_path, **ablation):
    data = json.loads(json.dumps(SMALL))
    data["ablation"].update(output_dir=str(tmp_path / "ablations"), **ablation)
    return recipe_from_data(data)


def write_recipe(tmp_path, data_overrides=None, **ablation) -> Path:
    data = json.loads(json.dumps(SMALL))
    data["ablation"].update(output_dir=str(tmp_path / "ablations"), **ablation)
    data.update(data_overrides or {})
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def summaries(root: Path) -> dict[str, str]:
    """cell id -> summary.json text, for every published cell."""
    return {str(p.parent.relative_to(root)): p.read_text() for p in root.glob("*/seed*/summary.json")}
