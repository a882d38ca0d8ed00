"""Does each new sequence length cost sigx's update a fresh attention plan? A diagnostic for the 150M shape's
update, which swung 0.62-3.18 s from step to step on an H200 (TRL's 0.29-0.44 s; docs/gpu.md, 2026-12-04).

    python bench/sdpa_shapes.py recipes/tiny.yaml --set training.autocast=bfloat16 [--set model.tiny...]

Why it might: sigx cuts each micro-batch to its longest row (sigx.engine.batching), so almost every step brings
lengths the process has not seen, and on Hopper PyTorch may pick cuDNN's fused attention, which builds an
execution plan per shape (tens of milliseconds, and about a second when a kernel variant must be compiled:
flashinfer PR #5245, sglang PR #4650). This measures exactly that, and nothing of sigx's step besides: one
forward and backward of the recipe's policy as the update runs it (``token_logprobs`` under the training
autocast, right-padded rows), at ``--widths`` lengths it has not seen, each then run again at the same length.
It does so twice: with PyTorch's own choice of attention kernel, and with cuDNN's attention turned off
(``torch.backends.cuda.enable_cudnn_sdp(False)``); the two use different lengths, so neither warms the other.
A first run far slower than its repeat under the default, and not with cuDNN off, is a per-shape cost that
cuDNN's attention causes. The attention kernels each setting ran are named (one profiled repeat).

Prints a table and one ``RESULT {json}`` line. On a CPU it runs (a rehearsal of the flow), but no attention
setting applies there and nothing it prints is a GPU figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import nullcontext

import torch
from torch.profiler import ProfilerActivity, profile

from sigx.config import load_recipe
from sigx.engine.trajectory import token_logprobs
from sigx.models.loading import load_base
from sigx.tasks import build_task

ATTENTION_WORDS = ("sdpa", "flash", "fmha", "attention", "attn", "cudnn")


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def batch(rows: int, width: int, vocab: int, generator: torch.Generator, device: str):
    """``rows`` sequences right-padded to ``width`` (collate's layout): one at full width, the rest shorter."""
    lengths = torch.randint(max(2, width // 4), width + 1, (rows,), generator=generator)
    lengths[0] = width
    input_ids = torch.randint(3, vocab, (rows, width), generator=generator)
    attention = (torch.arange(width)[None, :] < lengths[:, None]).long()
    return (input_ids * attention).to(device), attention.to(device)


def forward_backward(model, input_ids, attention, autocast) -> float:
    """Seconds for one forward and backward of a masked mean of the log-probs (the update's shape of work)."""
    synchronize()
    started = time.perf_counter()
    with autocast():
        logp = token_logprobs(model, input_ids, attention)
    mask = attention[:, 1:].float()
    ((logp * mask).sum() / mask.sum()).backward()
    synchronize()
    seconds = time.perf_counter() - started
    model.zero_grad(set_to_none=True)
    return seconds


def attention_kernels(model, input_ids, attention, autocast) -> list[str]:
    """The attention kernels one forward and backward launches (GPU only)."""
    if not torch.cuda.is_available():
        return []
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        forward_backward(model, input_ids, attention, autocast)
    names = {e.key for e in prof.key_averages() if e.device_type.name == "CUDA"}
    return sorted(n[:90] for n in names if any(w in n.lower() for w in ATTENTION_WORDS))


def measure(model, vocab: int, rows: int, widths: list[int], autocast, device: str) -> dict:
    generator = torch.Generator().manual_seed(0)
    first, repeat = [], []
    for width in widths:
        input_ids, attention = batch(rows, width, vocab, generator, device)
        first.append(forward_backward(model, input_ids, attention, autocast))
        repeat.append(forward_backward(model, input_ids, attention, autocast))
    return {"widths": widths, "first_s": first, "repeat_s": repeat,
            "first_median_s": statistics.median(first), "repeat_median_s": statistics.median(repeat),
            "kernels": attention_kernels(model, input_ids, attention, autocast)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--rows", type=int, default=64, help="rows per micro-batch (the bench's mini-batch: 64)")
    parser.add_argument("--widths", type=int, default=8, help="new lengths per attention setting")
    parser.add_argument("--min-width", type=int, default=120, help="the shortest length (prompt + completion)")
    args = parser.parse_args()
    recipe = load_recipe(args.recipe, args.overrides + ["logging.wandb=disabled"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    task = build_task(recipe.task)
    _, model, _ = load_base(recipe.model, task, recipe.task, device, log=lambda m: None)
    vocab = model.config.vocab_size
    dtype = recipe.training.autocast
    autocast = (lambda: torch.autocast("cuda", dtype=getattr(torch, dtype))) if device == "cuda" and dtype != "off" \
        else nullcontext
    warm = batch(args.rows, args.min_width - 1, vocab, torch.Generator().manual_seed(1), device)
    forward_backward(model, *warm, autocast)  # CUDA context, allocator, the first kernels: before any timing
    results = {}
    for index, (name, cudnn) in enumerate((("default", True), ("cudnn off", False))):
        if device == "cuda":
            torch.backends.cuda.enable_cudnn_sdp(cudnn)
        # lengths 11 apart, interleaved between the settings: every length is new to the process when first run
        widths = [args.min_width + 22 * i + 11 * index for i in range(args.widths)]
        results[name] = measure(model, vocab, args.rows, widths, autocast, device)
    where = torch.cuda.get_device_name() if device == "cuda" else "CPU (a rehearsal: no GPU figure)"
    print(f"\none forward + backward of {args.rows} rows, {recipe.model.name}, autocast {dtype}, on {where}\n")
    print("| attention | first run at a new length (median) | the same length again (median) | first / again |")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['first_median_s']:.3f} s | {r['repeat_median_s']:.3f} s | "
              f"{r['first_median_s'] / r['repeat_median_s']:.1f}x |")
    for name, r in results.items():
        print(f"{name}: first runs " + ", ".join(f"{s:.3f}" for s in r["first_s"]) + " s; again "
              + ", ".join(f"{s:.3f}" for s in r["repeat_s"]) + " s")
        print(f"{name}: attention kernels: {'; '.join(r['kernels']) or '(none named: CPU)'}")
    print("RESULT " + json.dumps({"device": where, "rows": args.rows, **results}))


if __name__ == "__main__":
    main()
