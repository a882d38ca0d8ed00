"""Batched, KV-cached sampling from a transformers causal LM: the decoding loop of the CPU rollout backends.

Why not ``model.generate``: on the small models these backends serve (the tiny demo model, a hub model on a
CPU), a decoding step costs per-step overhead far more than arithmetic, and three things ``generate`` does not
do cut the rollout by about a third (``bench/trl_step.py``):

- identical contexts are prefilled once and their KV cache is fanned out: a GRPO group is ``group_size``
  samples of one prompt, so the prefill shrinks by that factor;
- a row that has stopped leaves the batch at once instead of decoding padding until the slowest row ends;
- the per-step bookkeeping is a handful of tensor ops (no logits-processor or stopping-criteria machinery).

It also returns each token's log-prob under the distribution it was drawn from (after suppression,
temperature and nucleus), so ``rollout/logprob_gap`` checks cached decoding against the trainer's forward on
CPU as it does for vLLM. The distribution is transformers' own: the nucleus filter is its ``TopPLogitsWarper``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from transformers import DynamicCache
from transformers.generation.logits_process import TopPLogitsWarper


@dataclass
class Sampled:
    """One row's continuation: ids (the stop token included), each id's sampling log-prob, and whether it
    stopped by itself (False: cut by ``max_new_tokens``)."""

    ids: list[int]
    logprobs: list[float]
    stopped: bool


def sampling_scores(logits: torch.Tensor, temperature: float, top_p: float,
                    suppress_ids: Sequence[int] | torch.Tensor, greedy: bool) -> torch.Tensor:
    """The scores whose softmax is the distribution a token is drawn from: suppressed ids at -inf, then (when
    sampling) temperature and the nucleus, in ``generate``'s order. Greedy decoding takes the argmax of the
    untempered scores."""
    scores = logits.float()
    if len(suppress_ids):  # out of place: the caller's logits stay as they were
        scores = scores.index_fill(-1, torch.as_tensor(suppress_ids, device=scores.device), float("-inf"))
    if greedy:
        return scores
    if temperature != 1.0:
        scores = scores / temperature
    if top_p < 1.0:
        scores = TopPLogitsWarper(top_p)(None, scores)
    return scores


def _cache_kwargs(model, cache: DynamicCache) -> dict:
    """The KV cache under the name this transformers version takes (``cache`` from 5.x, ``past_key_values``
    before) and, where the model has it, ``logits_to_keep=1``: only the last position's logits are needed, and
    a hub vocabulary makes the others the largest tensor of a prefill."""
    accepted = inspect.signature(model.forward).parameters
    kwargs = {"cache" if "cache" in accepted else "past_key_values": cache, "use_cache": True}
    if "logits_to_keep" in accepted:
        kwargs["logits_to_keep"] = 1
    return kwargs


def draw(probs: torch.Tensor, generator: torch.Generator | list[torch.Generator] | None) -> torch.Tensor:
    """One token per row [B, 1] from ``probs`` [B, V], with ``generator`` (drawn where the generator lives). A
    list holds one (CPU) generator per row: each row's token then depends on that row alone, not on which other
    rows share its batch (what lets processes sample shares of a batch and draw what one process draws). A row
    draws one uniform from its generator and takes the token whose interval of the cumulative distribution
    holds it (inverse CDF: B small draws and one search; a multinomial call per row costs 8x as much on CPU)."""
    if isinstance(generator, (list, tuple)):
        uniform = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generator])
        cumulative = probs.double().cumsum(-1)
        # right=True: the first token whose cumulative mass exceeds u, never one of zero probability
        token = torch.searchsorted(cumulative, (uniform.to(probs.device) * cumulative[:, -1]).unsqueeze(-1),
                                   right=True)
        return token.clamp_max(probs.shape[-1] - 1)
    if generator is not None and generator.device.type != probs.device.type:
        return torch.multinomial(probs.to(generator.device), 1, generator=generator).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator)


def rows_of(generator, rows: list[int]):
    """The generator(s) of the batch rows ``rows`` (context indices): per-row generators follow their rows."""
    return [generator[r] for r in rows] if isinstance(generator, (list, tuple)) else generator


@torch.no_grad()
def sample(model, contexts: list[list[int]], *, max_new_tokens: int, pad_id: int, stop_ids: list[int],
           temperature: float = 1.0, top_p: float = 1.0, greedy: bool = False, suppress_ids: list[int] = (),
           stop_strings: tuple[str, ...] = (), decode: Callable[[list[int]], str] | None = None,
           generator: torch.Generator | list[torch.Generator] | None = None) -> list[Sampled]:
    """Continue every context until a stop id (EOS, a one-token stop string), a multi-token ``stop_strings``
    match (checked on ``decode`` of the row's newest tokens) or ``max_new_tokens``. Draws come from
    ``generator`` (torch's global RNG when None), so a caller with its own stream gets the same samples
    whatever else draws random numbers; a list: one generator per context."""
    if not contexts:
        return []
    device = model.device
    unique: dict[tuple[int, ...], int] = {}
    source = [unique.setdefault(tuple(c), len(unique)) for c in contexts]
    width = max(len(c) for c in unique)
    input_ids = torch.tensor([[pad_id] * (width - len(c)) + list(c) for c in unique], device=device)
    attention = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in unique], device=device)
    positions = (attention.cumsum(-1) - 1).clamp_min(0)
    cache = DynamicCache()
    with_cache = _cache_kwargs(model, cache)
    logits = model(input_ids=input_ids, attention_mask=attention, position_ids=positions, **with_cache).logits[:, -1]
    fan_out = torch.tensor(source, device=device)
    if len(unique) < len(contexts):
        cache.batch_select_indices(fan_out)
    logits, attention, positions = logits[fan_out], attention[fan_out], positions[fan_out, -1:]

    results = [Sampled([], [], False) for _ in contexts]
    rows = list(range(len(contexts)))  # the batch row -> its context
    stop_tensor = torch.tensor(stop_ids, dtype=torch.long, device=device)
    suppress = torch.tensor(list(suppress_ids), dtype=torch.long, device=device)  # built once, not per step
    tail = max((len(s) for s in stop_strings), default=0)  # a token is at least one character
    for step in range(max_new_tokens):
        scores = sampling_scores(logits, temperature, top_p, suppress, greedy)
        logp = torch.log_softmax(scores, dim=-1)
        tokens = logp.argmax(-1, keepdim=True) if greedy else draw(logp.exp(), rows_of(generator, rows))
        token_logp = logp.gather(-1, tokens).squeeze(-1)
        finished = torch.isin(tokens.squeeze(-1), stop_tensor)
        for k, (row, token, lp) in enumerate(zip(rows, tokens.squeeze(-1).tolist(), token_logp.tolist())):
            out = results[row]
            out.ids.append(token)
            out.logprobs.append(lp)
            if stop_strings and not finished[k] and any(decode(out.ids[-tail:]).endswith(s) for s in stop_strings):
                finished[k] = True
        for k in finished.nonzero().squeeze(-1).tolist():
            results[rows[k]].stopped = True
        if finished.all() or step == max_new_tokens - 1:
            break
        if finished.any():  # stopped rows leave the batch, their cache rows with them
            keep = (~finished).nonzero().squeeze(-1)
            cache.batch_select_indices(keep)
            rows = [rows[k] for k in keep.tolist()]
            tokens, attention, positions = tokens[keep], attention[keep], positions[keep]
        attention = torch.cat([attention, attention.new_ones(len(rows), 1)], dim=-1)
        positions = positions + 1
        logits = model(input_ids=tokens, attention_mask=attention, position_ids=positions, **with_cache).logits[:, -1]
    return results
