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

import torch

from sigx.config import load_recipe
from sigx.engine.lora import add_adapters
from sigx.engine.trajectory import token_logprobs
from sigx.memory import model_config, plan, turns_of


def tensor_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if t is None:
            continue
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total


def measure(recipe, prompt_tokens: int) -> dict[str, int]:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(model_config(recipe)).to(getattr(torch, recipe.model.dtype))
    if recipe.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    trained = add_adapters(model, recipe.training.lora, 0) if recipe.training.lora.r else list(model.parameters())
    model.train()
    r, t = recipe.rollout, recipe.training
    turns, reply = turns_of(recipe)
    seq = prompt_tokens + turns * r.max_new_tokens + (turns - 1) * reply
    rows = t.micro_batch_size or -(-(t.prompts_per_step * r.group_size) // t.mini_batches)
    ids = torch.randint(0, model.config.vocab_size, (rows, seq))
    saved = []

    def pack(tensor):
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        logp = token_logprobs(model, ids, torch.ones_like(ids), r.temperature)
    parameters = {id(p) for p in model.parameters()}
    activations = tensor_bytes(s for s in saved if id(s) not in parameters and s.data_ptr() not in
                               {p.data_ptr() for p in model.parameters()})
    optimizer = torch.optim.AdamW(trained, lr=1e-4)
    logp.sum().backward()
    optimizer.step()
    state = [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.dim() > 0]
    return {"weights": tensor_bytes(model.parameters()),
            "gradients": tensor_bytes(p.grad for p in trained), "optimizer (AdamW)": tensor_bytes(state),
            "activations + logits": activations}


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
    measured = measure(recipe, args.prompt_tokens)
    print(f"{args.recipe} {' '.join(args.set)} (prompts of {args.prompt_tokens} tokens)")
    print(f"{'component':24} {'estimate MiB':>13} {'measured MiB':>13} {'ratio':>7}")
    for name, value in measured.items():
        print(f"{name:24} {estimate[name] / 2**20:13.2f} {value / 2**20:13.2f} {estimate[name] / value:7.2f}")


if __name__ == "__main__":
    main()
