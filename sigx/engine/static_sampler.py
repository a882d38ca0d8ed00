"""Fixed-shape decoding for GPUs: a static KV cache, finished rows kept in the batch (masked), and one decode
step that ``torch.compile`` can capture once (``mode="reduce-overhead"``: CUDA graphs).

Why: the dynamic loop of :mod:`sigx.engine.sampler` shrinks the batch as rows stop, which is what a CPU wants
(less arithmetic) and what a GPU does not: every new batch shape means new kernel plans (cuDNN attention built
a plan per shape, ~62 ms a call, in the measured H200 profile) and an eager step per token leaves the GPU idle
between launches (~17% busy). Here every decode step has the same shapes: batch B, one token, a cache of
``width + max_new_tokens`` positions, one 2-D attention mask for the whole call (left padding zeroed; positions
not yet written are excluded by causality), so the step is captured once and replayed. The cost: finished rows
are still computed until the last row stops. transformers' ``StaticCache`` holds the KV tensors; the step is
transformers' own forward, its grouped-query attention done without copying the cache
(:mod:`sigx.engine.decode_attention`).

Shapes repeat across calls: the prompt block is left-padded to a multiple of :data:`PROMPT_WIDTH_MULTIPLE`
tokens, so a new batch whose longest prompt is a few tokens longer reuses the captured step instead of
compiling and capturing another (a cost the first steps of a run pay once per shape). The loop keeps the GPU
queue full: the step's cache position is a device tensor advanced in place (no host
copy per token), and on a GPU whether every row has stopped is read back only every
:data:`CHECK_FINISHED_EVERY` steps (each read waits for the GPU to drain); the steps decoded after the last
row stopped change nothing but the random stream.

The distribution is the dynamic sampler's (the same ``sampling_scores``: suppression, temperature, nucleus), and
each sampled token's log-prob is returned. Draws come from the caller's generator; finished rows draw too (the
batch is fixed), so the stream is consumed differently from the dynamic loop: same distribution, other samples.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Sequence

import torch
from transformers import StaticCache

from sigx.engine.decode_attention import decoding_attention
from sigx.engine.sampler import Sampled, _cache_kwargs, draw, sampling_scores

CHECK_FINISHED_EVERY = 8  # decode steps between reads of "all rows stopped" on a GPU (on a CPU: every step)
KEPT_CACHES = 2  # static caches kept for reuse, by (batch, length): the rollout's and the evaluation's (each
# holds its memory between calls, the price of static addresses)
PROMPT_WIDTH_MULTIPLE = 32  # the prompt block is left-padded to a multiple of this, so that the cache length, and
# with it the compiled step's shapes, repeat from one rollout to the next instead of following the longest prompt


class StaticDecoder:
    """One per rollout backend: the compiled decode step is kept across calls (recompiled only when the batch
    or cache size changes, which a GRPO run's fixed batch makes rare)."""

    def __init__(self, model, compile: bool = False, dtype: torch.dtype | None = None):
        self.model = model
        self.dtype = dtype  # decode under autocast in this dtype (bf16 on a GPU), None: the weights' dtype
        self._step = torch.compile(self._forward, mode="reduce-overhead", fullgraph=False) if compile else self._forward
        self._caches: OrderedDict[tuple[int, int], StaticCache] = OrderedDict()

    def _cache(self, batch: int, length: int) -> StaticCache:
        """A static cache of this shape, reset, reused across calls as ``generate`` reuses its own: its tensors
        are marked as static addresses, so a new cache per call would make the CUDA graphs re-record."""
        key = (batch, length)
        cache = self._caches.pop(key, None)
        if cache is None:
            cache = StaticCache(config=self.model.config, max_cache_len=length)
        else:
            cache.reset()
        self._caches[key] = cache
        while len(self._caches) > KEPT_CACHES:
            self._caches.popitem(last=False)
        return cache

    def _forward(self, input_ids, attention_mask, position_ids, cache_position, cache):
        kwargs = _cache_kwargs(self.model, cache)
        embeds = self.model.get_input_embeddings()(input_ids)
        if self.dtype is not None and self.dtype != torch.float32:
            # The residual stream in the decode dtype, as in a model loaded in it: under autocast alone the
            # embeddings stay float32, so do the rotary cos/sin and the keys, while the values come out of a
            # bf16 matmul; the static cache (allocated on the first write) then cannot hold both (a CUDA error).
            embeds = embeds.to(self.dtype)
        return self.model(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                          cache_position=cache_position, **kwargs).logits[:, -1].float()

    def _autocast(self):
        device = self.model.device.type
        if self.dtype is None or self.dtype == torch.float32:
            return torch.autocast(device, enabled=False)
        return torch.autocast(device, dtype=self.dtype)

    @torch.no_grad()
    def sample(self, contexts: list[list[int]], *, max_new_tokens: int, pad_id: int, stop_ids: list[int],
               temperature: float = 1.0, top_p: float = 1.0, greedy: bool = False, suppress_ids: Sequence[int] = (),
               stop_strings: tuple[str, ...] = (), decode: Callable[[list[int]], str] | None = None,
               generator: torch.Generator | list[torch.Generator] | None = None) -> list[Sampled]:
        if not contexts:
            return []
        device, batch = self.model.device, len(contexts)
        width = -(-max(len(c) for c in contexts) // PROMPT_WIDTH_MULTIPLE) * PROMPT_WIDTH_MULTIPLE
        length = width + max_new_tokens
        input_ids = torch.tensor([[pad_id] * (width - len(c)) + list(c) for c in contexts], device=device)
        attention = torch.zeros(batch, length, dtype=torch.long, device=device)
        for i, c in enumerate(contexts):
            attention[i, width - len(c):] = 1  # real tokens and every position still to be generated
        positions = (attention[:, :width].cumsum(-1) - 1).clamp_min(0)
        cache = self._cache(batch, length)
        with self._autocast(), decoding_attention(self.model):
            logits = self._forward(input_ids, attention, positions, torch.arange(width, device=device), cache)
        next_position = positions[:, -1:] + 1
        cache_position = torch.tensor([width], device=device)
        check_every = 1 if device.type == "cpu" else CHECK_FINISHED_EVERY
        stop_tensor = torch.tensor(stop_ids, dtype=torch.long, device=device)
        suppress = torch.tensor(list(suppress_ids), dtype=torch.long, device=device)
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        tokens_out = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
        logps_out = torch.zeros(batch, max_new_tokens, device=device)
        lengths = torch.zeros(batch, dtype=torch.long, device=device)
        stopped = torch.zeros(batch, dtype=torch.bool, device=device)
        tail = max((len(s) for s in stop_strings), default=0)
        for step in range(max_new_tokens):
            scores = sampling_scores(logits, temperature, top_p, suppress, greedy)
            logp = torch.log_softmax(scores, dim=-1)
            tokens = logp.argmax(-1, keepdim=True) if greedy else draw(logp.exp(), generator)
            running = ~finished
            tokens_out[:, step] = torch.where(running, tokens.squeeze(-1), pad_id)
            logps_out[:, step] = logp.gather(-1, tokens).squeeze(-1)
            lengths += running.long()
            hit = running & torch.isin(tokens.squeeze(-1), stop_tensor)
            if stop_strings:  # multi-token stop strings: checked on the decoded tail of each running row
                for k in running.nonzero().squeeze(-1).tolist():
                    ids = tokens_out[k, : int(lengths[k])].tolist()
                    if any(decode(ids[-tail:]).endswith(s) for s in stop_strings):
                        hit[k] = True
            stopped |= hit
            finished |= hit
            if step == max_new_tokens - 1 or ((step + 1) % check_every == 0 and bool(finished.all())):
                break
            with self._autocast(), decoding_attention(self.model):
                logits = self._step(tokens, attention, next_position, cache_position, cache)
            next_position.add_(1)
            cache_position.add_(1)
        tokens_cpu, logps_cpu, lengths_cpu = tokens_out.cpu(), logps_out.cpu(), lengths.cpu()
        return [Sampled(tokens_cpu[i, : lengths_cpu[i]].tolist(), logps_cpu[i, : lengths_cpu[i]].tolist(),
                        bool(stopped[i])) for i in range(batch)]
