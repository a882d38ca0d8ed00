"""Grouped-query attention for one-token decode steps without copying the KV cache (``StaticDecoder``'s steps).

Why: transformers' SDPA path (``integrations/sdpa_attention.py``) passes ``enable_gqa`` to PyTorch only when
there is no attention mask, because with a mask PyTorch's fused kernels refuse unequal head counts and fall
back to the math kernel. So with a mask, which a padded static cache always needs, it calls ``repeat_kv``:
every decode step, in every layer, the whole cache (``width + max_new_tokens`` positions) is copied
``num_heads / num_kv_heads`` times (4x on the 150M bench shape, 7x on Qwen2.5-0.5B's) before attention reads
it. The H100 profile of issue #16 shows those copies as the largest kernels after attention itself.
(transformers 5.2x packs the same way itself, but only outside ``torch.compile``, where the static decoder's
step runs; the GPU image's 5.17 never does.)

With a single query token the copy is unnecessary: the ``G = num_heads / num_kv_heads`` query heads that share
a KV head can be laid out as G query *rows* of that one KV head, ``[B, H, 1, D] -> [B, H_kv, G, D]``, and one
ordinary (equal-heads) SDPA call attends them to the uncopied cache ``[B, H_kv, L, D]``, the mask
``[B, 1, 1, L]`` broadcasting over the G rows. A decode step has no causal structure among those rows (they
are the same position), so the result is exactly per-head attention; the head order is ``repeat_kv``'s
(query head ``h`` reads KV head ``h // G``). This is the "GQA packing" of decode kernels (FlashDecoding, vLLM);
here it is a reshape around PyTorch's own SDPA, registered through transformers' documented
``AttentionInterface`` / ``AttentionMaskInterface`` extension points under :data:`NAME`.

Every other call (a prefill, a training forward, no grouping) goes to transformers' ``sdpa_attention_forward``
unchanged, and the masks are transformers' SDPA masks, so switching a model to :data:`NAME` changes only the
decode steps' kernels.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "sigx_decode_sdpa"
#: what a plain decoder's attention layer passes besides q, k, v and the mask (the sliding window, if any, is
#: already in the mask, as transformers' SDPA path assumes); anything else set (a softcap, attention sinks, a
#: position bias) goes to transformers' own function
PLAIN_KWARGS = frozenset({"cache_position", "position_ids", "sliding_window", "use_cache", "output_attentions"})


def decode_sdpa_attention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor,
                                  value: torch.Tensor, attention_mask: torch.Tensor | None, dropout: float = 0.0,
                                  scaling: float | None = None, is_causal: bool | None = None, **kwargs):
    """transformers' attention-function signature: ``query`` [B, H, q, D], ``key``/``value`` [B, H_kv, L, D];
    returns ([B, q, H, D], None)."""
    batch, heads, q_length, head_dim = query.shape
    kv_heads = key.shape[1]
    mask_is_per_row = attention_mask is None or (attention_mask.dim() == 4 and attention_mask.shape[-2] == 1)
    other_features = any(v is not None and v is not False for k, v in kwargs.items() if k not in PLAIN_KWARGS)
    if q_length != 1 or kv_heads == heads or not mask_is_per_row or other_features:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    groups = heads // kv_heads
    packed = query.reshape(batch, kv_heads, groups, head_dim)  # query head h = (h // G, h % G)
    out = torch.nn.functional.scaled_dot_product_attention(packed, key, value, attn_mask=attention_mask,
                                                           dropout_p=dropout, scale=scaling, is_causal=False)
    return out.reshape(batch, heads, 1, head_dim).transpose(1, 2).contiguous(), None


AttentionInterface.register(NAME, decode_sdpa_attention_forward)
AttentionMaskInterface.register(NAME, sdpa_mask)


@contextmanager
def decoding_attention(model):
    """Within the block, a model on transformers' SDPA attention uses :func:`decode_sdpa_attention_forward`
    (other implementations are left alone: eager and flash attention have their own GQA handling). The switch
    is the config field every attention layer reads at call time, restored on exit, so the trainer's forwards
    never see it."""
    config = model.config
    previous = getattr(config, "_attn_implementation", None)
    if previous != "sdpa":
        yield
        return
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = previous
