"""sigx's GRPO step against TRL's ``GRPOTrainer``: same model, batch, group size, completion length, inner updates.

    pip install -e '.[bench]'          # TRL
    python bench/trl_step.py recipes/tiny.yaml --steps 8 --warmup 2
    # GPU (pip install -e '.[gpu,bench]'): both sides roll out on colocated vLLM, bf16 autocast
    python bench/trl_step.py recipes/tiny.yaml --set rollout.backend=vllm --set training.autocast=bfloat16
    python bench/trl_step.py recipes/full.yaml --steps 6 --warmup 1 --set training.prompts_per_step=8

One GRPO step = one rollout of ``prompts_per_step`` x ``group_size`` completions (at most ``max_new_tokens``
each, temperature as the recipe says) + ``mini_batches`` optimizer steps on them (TRL: ``steps_per_generation``
= mini_batches, ``per_device_train_batch_size`` = completions / mini_batches), no KL term (beta 0), the same
learning rate, the recipe's reward; on GPU the same rollout engine (TRL's ``use_vllm`` in colocate mode, with
the recipe's memory share and sleep mode), bf16 autocast, gradient checkpointing and micro-batch size (TRL:
``gradient_accumulation_steps``). Both start from the same base weights (the recipe's model; for
``sigx/tiny`` the cached warm start). Each side runs in its own fresh subprocess, one after the other, so that
its peak memory (max RSS on CPU, ``torch.cuda.max_memory_allocated`` on GPU) is its own; the step time is the
median over the steps after ``--warmup``, split into rollout and update: sigx's own phase timers, and for TRL
its sampling call (``_generate_single_turn``, wrapped here) against the rest of its step. Prints a markdown
table and sigx/TRL ratios.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from sigx.config import load_recipe


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class UpdateShapes:
    """The (rows, length) of every micro-batch the trainer's update and log-prob passes run, step by step, and
    how many of them the process had not run before: a cost paid per new shape (an attention plan) shows as slow
    steps that bring many new ones (docs/gpu.md, the 150M update's swing). It only watches: the trainer's own
    micro-batching is called unchanged."""

    def __init__(self, trainer):
        self.seen: set[tuple[int, int]] = set()
        self.current: list[tuple[int, int]] = []
        layout = trainer._micro_batches

        def recorded(batch, rows=None):
            parts = layout(batch, rows)
            self.current.extend(tuple(micro.input_ids.shape) for _, micro in parts)
            return parts

        trainer._micro_batches = recorded

    def take(self) -> dict:
        """The step just run: its micro-batches, and the distinct shapes among them the process had not seen."""
        shapes, self.current = self.current, []
        new = set(shapes) - self.seen
        self.seen |= new
        return {"micro_batches": len(shapes), "new_shapes": len(new)}


def run_sigx(recipe, profile: bool = False) -> dict:
    from sigx.engine.shared import SharedEngine
    from sigx.engine.trainer import GRPOTrainer
    from sigx.techniques import build

    engine = SharedEngine(recipe, log=lambda m: None)
    trainer = GRPOTrainer(recipe, engine, build(recipe, engine))
    shapes = UpdateShapes(trainer)
    rows = [(trainer.step().metrics, shapes.take()) for _ in range(recipe.training.steps)]
    out = {"steps": [{"step_s": r["step_s"], "rollout_s": r["rollout_s"], "train_s": r["train_s"],
                      "tokens": r["rollout_tokens_per_s"] * r["rollout_s"], "reward": r["reward"],
                      "trained_fraction": r["trained_fraction"], **shaped} for r, shaped in rows]}
    if profile and torch.cuda.is_available():  # after the timed steps: the profiler cannot disturb them
        sys.path.insert(0, str(Path(__file__).parent))
        from gpu_profile import gpu_busy

        out["profile"] = gpu_busy(trainer)
    return out


def run_trl(recipe) -> dict:
    import random

    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from sigx.engine.rollout import use_chat_template
    from sigx.models.loading import resolve_base
    from sigx.models.tokenizer import load_tokenizer
    from sigx.tasks import build_task
    from sigx.tasks.base import Segment

    task = build_task(recipe.task)
    path = resolve_base(recipe.model, task, recipe.task, log=lambda m: None)
    tokenizer = load_tokenizer(path)  # the tiny model's char tokenizer as saved (AutoTokenizer drops spaces)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path)
    t, r = recipe.training, recipe.rollout
    rng = random.Random(recipe.seed)
    problems = {}
    rows = []
    chat = use_chat_template(recipe.rollout.chat_template, tokenizer)  # as sigx wraps prompts, so does TRL
    for i in range(t.prompts_per_step * t.steps):
        problem = task.train_problem(rng)
        problems[i] = problem
        rows.append({"prompt": [{"role": "user", "content": problem.prompt}] if chat else problem.prompt, "idx": i})

    def reward(prompts, completions, idx, **_):
        texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]  # conversational: messages
        return [task.score(problems[i], [Segment(c, True)]).reward for c, i in zip(texts, idx)]

    completions = t.prompts_per_step * r.group_size
    per_optimizer_step = completions // t.mini_batches
    micro = min(t.micro_batch_size or per_optimizer_step, per_optimizer_step)
    accumulation = per_optimizer_step // micro
    gpu = {}
    if r.backend == "vllm":  # TRL's colocated vLLM: the same engine, share of memory and sleep mode as sigx's
        gpu = dict(use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=r.gpu_memory_utilization,
                   vllm_enable_sleep_mode=r.vllm_sleep, vllm_max_model_length=r.max_model_len)
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="sigx-bench-trl-"), per_device_train_batch_size=micro,
        gradient_accumulation_steps=accumulation, steps_per_generation=t.mini_batches * accumulation,
        num_generations=r.group_size, max_completion_length=r.max_new_tokens,
        temperature=r.temperature, top_p=r.top_p, learning_rate=t.lr, beta=0.0, num_iterations=t.inner_epochs,
        epsilon=t.clip_eps, max_grad_norm=t.max_grad_norm, weight_decay=t.weight_decay,
        max_steps=t.steps * t.mini_batches, logging_steps=1, report_to=[], save_strategy="no", seed=recipe.seed,
        use_cpu=not torch.cuda.is_available(), bf16=t.autocast == "bfloat16" and torch.cuda.is_available(),
        gradient_checkpointing=recipe.model.gradient_checkpointing, disable_dropout=True, shuffle_dataset=False,
        dataloader_num_workers=0, **gpu,
    )
    marks: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            marks.append(time.perf_counter())

    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config, train_dataset=Dataset.from_list(rows),
                          processing_class=tokenizer, callbacks=[StepClock()])
    generation_s: list[float] = []  # TRL's sampling call, once per rollout: the rest of its step is the update
    sample = trainer._generate_single_turn

    def timed_sample(*args, **kwargs):
        t0 = time.perf_counter()
        out = sample(*args, **kwargs)
        generation_s.append(time.perf_counter() - t0)
        return out

    trainer._generate_single_turn = timed_sample
    start = time.perf_counter()
    trainer.train()
    logs = [h for h in trainer.state.log_history if "reward" in h]
    ends = marks[t.mini_batches - 1:: t.mini_batches]  # one GRPO step = mini_batches optimizer steps
    starts = [start] + ends[:-1]
    steps = []
    for k, (a, b) in enumerate(zip(starts, ends)):
        per = t.mini_batches if len(logs) >= len(ends) * t.mini_batches else 1  # TRL logs per optimizer step
        log = logs[k * per] if k * per < len(logs) else {}  # or per generation, depending on its version
        length = log.get("completions/mean_length", float("nan"))
        rollout_s = generation_s[k] if k < len(generation_s) else float("nan")
        steps.append({"step_s": b - a, "rollout_s": rollout_s, "train_s": b - a - rollout_s,
                      "tokens": length * completions, "reward": log.get("reward", float("nan"))})
    return {"steps": steps}


def child(side: str, recipe_path: str, overrides: list[str], profile: bool) -> None:
    torch.manual_seed(0)
    recipe = load_recipe(recipe_path, overrides)
    result = run_sigx(recipe, profile) if side == "sigx" else run_trl(recipe)
    result["peak_memory_mb"] = peak_memory_mb()
    print("RESULT " + json.dumps(result), flush=True)


def summarize(result: dict, warmup: int) -> dict:
    steps = result["steps"][warmup:]
    out = {"each_step": [(s["step_s"], s.get("rollout_s", float("nan")), s.get("train_s", float("nan")),
                          s["tokens"], s.get("micro_batches"), s.get("new_shapes")) for s in result["steps"]],
           "step_s": statistics.median(s["step_s"] for s in steps),
           "tokens_per_s": sum(s["tokens"] for s in steps) / sum(s["step_s"] for s in steps),
           "peak_memory_mb": result["peak_memory_mb"], "steps": len(steps),
           "reward": statistics.mean(s["reward"] for s in result["steps"])}
    if "profile" in result:
        out["profile"] = result["profile"]
    if "trained_fraction" in steps[0]:  # sigx leaves rows with zero advantage out of the update
        out["trained_fraction"] = statistics.mean(s["trained_fraction"] for s in steps)
    if "rollout_s" in steps[0]:
        out["rollout_s"] = statistics.median(s["rollout_s"] for s in steps)
        out["train_s"] = statistics.median(s["train_s"] for s in steps)
        out["rollout_tokens_per_s"] = sum(s["tokens"] for s in steps) / sum(s["rollout_s"] for s in steps)
        out["train_tokens_per_s"] = sum(s["tokens"] for s in steps) / sum(s["train_s"] for s in steps)
    return out


def print_steps(side: str, result: dict) -> None:
    """Every step, the warm-up ones too, with the tokens it generated: a slow one shows, and whether it is slow
    because it generated more; for sigx also its micro-batches and how many of their shapes were new."""
    shaped = result["each_step"][0][4] is not None
    print(f"{side} steps (total / rollout / update s, generated tokens"
          + (", micro-batches (new shapes)" if shaped else "") + "): " + ", ".join(
              f"{t:.2f}/{r:.2f}/{u:.2f} {n:.0f}" + (f" {m} ({new})" if shaped else "")
              for t, r, u, n, m, new in result["each_step"]), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipe")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--profile", action="store_true",
                        help="on a GPU, after sigx's timed steps: the share of one step the GPU is busy "
                             "(bench/gpu_profile.py) and its top kernels")
    parser.add_argument("--side", choices=["sigx", "trl"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        child(args.side, args.recipe, args.overrides, args.profile)
        return
    overrides = args.overrides + [f"training.steps={args.steps}", "logging.wandb=disabled"]
    results = {}
    for side in ["sigx", "trl"]:
        cmd = [sys.executable, __file__, args.recipe, "--side", side, *sum((["--set", o] for o in overrides), []),
               *(["--profile"] if args.profile and side == "sigx" else [])]
        out = subprocess.run(cmd, capture_output=True, text=True)
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        if out.returncode or not line:
            sys.exit(f"{side} side failed:\n{out.stderr[-3000:]}")
        results[side] = summarize(json.loads(line[0][len("RESULT "):]), args.warmup)
        print_steps(side, results[side])  # now: a limit that cuts the next side short leaves these figures
    recipe = load_recipe(args.recipe, overrides)
    r, t = recipe.rollout, recipe.training
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    print(f"\n{recipe.model.name} on {recipe.task.name}, {device}: {t.prompts_per_step} prompts x {r.group_size} "
          f"samples, <= {r.max_new_tokens} new tokens, {t.mini_batches} optimizer steps per rollout; median of "
          f"{results['sigx']['steps']} steps after {args.warmup} warm-up\n")
    print("| | step time (median) | rollout / update (median) | generated tokens/s (whole step) | rollout tokens/s "
          "| train tokens/s | peak memory |")
    print("|---|---|---|---|---|---|---|")
    for side, name in [("sigx", "sigx"), ("trl", "TRL GRPOTrainer")]:
        x = results[side]
        print(f"| {name} | {x['step_s']:.2f} s | {x.get('rollout_s', float('nan')):.2f} s / {x.get('train_s', float('nan')):.2f} s "
              f"| {x['tokens_per_s']:.0f} | {x.get('rollout_tokens_per_s', float('nan')):.0f} | "
              f"{x.get('train_tokens_per_s', float('nan')):.0f} | {x['peak_memory_mb']:.0f} MB |")
    print(f"\nsigx trained {results['sigx']['trained_fraction']:.0%} of the rows over the measured steps (the rest "
          "had advantage exactly 0: no gradient, left out of the update)")
    ratio = results["sigx"]["step_s"] / results["trl"]["step_s"]
    print(f"\nsigx / TRL step time: {ratio:.2f}x (goal <= 0.5x)")
    rollout_ratio = results["sigx"]["rollout_tokens_per_s"] / results["trl"]["rollout_tokens_per_s"]
    print(f"sigx / TRL rollout tokens/s: {rollout_ratio:.1f}x (goal >= 5x)")
    if "profile" in results["sigx"]:
        p = results["sigx"]["profile"]
        print(f"GPU busy: {p['gpu_kernel_s']:.2f} s of CUDA kernels in a {p['step_s']:.2f} s step, "
              f"{p['gpu_busy_share']:.0%} (goal >= 50%; rollout {p['rollout_s']:.2f} s, update {p['train_s']:.2f} s)")
        for name, seconds, calls in p["top_kernels"]:
            print(f"    {seconds:7.3f} s  {calls:6d} calls  {name}")


if __name__ == "__main__":
    main()
