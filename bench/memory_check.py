"""The memory plan of `sigx validate` (sigx/memory.py) against what a run holds, measured on CPU.

Measured: the bytes of the weights, gradients and AdamW state after one optimizer step (sums of tensor sizes),
and the activations a forward pass keeps for the backward pass of one micro-batch, counted as they are saved
(torch.autograd.graph.saved_tensors_hooks; each storage once), with the recipe's loss path (sigx's
token_logprobs: logits, float32, log-softmax, gather). CPU has no allocator peak to read, so this counts what
must be held, which is what the plan estimates.

    python bench/memory_check.py recipes/tiny.yaml --prompt-tokens 16 [--set training.lora.r=8] ...
"""

from __future__ import annotations

import argparse

from sigx.config import load_recipe
from sigx.memory import measure_held, plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--prompt-tokens", type=int, default=16)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe, args.set)
    estimate = {line.component: line.bytes for line in plan(recipe, args.prompt_tokens)}
    estimate["weights"] += estimate.pop("LoRA adapters", 0)
    estimate["activations + logits"] = estimate.pop("activations") + estimate.pop("logits")
    measured = measure_held(recipe, args.prompt_tokens)
    print(f"{args.recipe} {' '.join(args.set)} (prompts of {args.prompt_tokens} tokens)")
    print(f"{'component':24} {'estimate MiB':>13} {'measured MiB':>13} {'ratio':>7}")
    for name, value in measured.items():
        print(f"{name:24} {estimate[name] / 2**20:13.2f} {value / 2**20:13.2f} {estimate[name] / value:7.2f}")


if __name__ == "__main__":
    main()
