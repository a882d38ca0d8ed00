"""The CPU rollout's decoding loop (:mod:`sigx.engine.sampler`): it must draw from exactly the distribution the
trainer scores (hand-computed scores, log-probs against a full forward, empirical frequencies), decode greedily
as transformers' ``generate`` does, prefill a shared prompt once, let stopped rows leave the batch, and stop
on ids, multi-token strings and the length limit."""

import pytest
import math

import torch
from scipy.stats import chisquare
from transformers import Qwen2Config, Qwen2ForCausalLM

from sigx.engine.sampler import draw, sample, sampling_scores
from sigx.engine.trajectory import token_logprobs

VOCAB, PAD = 24, 0


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = Qwen2ForCausalLM(Qwen2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False))
    with torch.no_grad():
        m.lm_head.weight.mul_(20)  # peaked next-token distributions, as a trained model has: greedy has no near-ties
    return m.eval()


CONTEXTS = [[5, 6, 7], [5, 6, 7], [9, 3], [4, 8, 2, 11, 13], [9, 3], [5, 6, 7]]


def test_scores_suppress_then_temper_then_keep_the_nucleus():
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    # top_p 0.8: the smallest set whose mass reaches 0.8 is {0.5, 0.3}; renormalised 0.625 / 0.375
    kept = torch.softmax(sampling_scores(logits, 1.0, 0.8, [], greedy=False), -1)
    assert torch.allclose(kept, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    # suppressing id 0 renormalises over the rest: 0.6 / 0.3 / 0.1
    suppressed = torch.softmax(sampling_scores(logits, 1.0, 1.0, [0], greedy=False), -1)
    assert torch.allclose(suppressed, torch.tensor([[0.0, 0.6, 0.3, 0.1]]))
    # temperature 0.5 squares the probabilities before renormalising: 0.25/0.09/0.0225/0.0025 over 0.365
    tempered = torch.softmax(sampling_scores(logits, 0.5, 1.0, [], greedy=False), -1)
    assert torch.allclose(tempered, torch.tensor([[0.25, 0.09, 0.0225, 0.0025]]) / 0.365)
    # greedy ignores temperature (argmax is unchanged by it) but still never picks a suppressed id
    assert sampling_scores(logits, 0.5, 0.8, [0], greedy=True).argmax().item() == 1


def test_greedy_decoding_is_transformers_generate(model):
    ours = sample(model, CONTEXTS, max_new_tokens=6, pad_id=PAD, stop_ids=[], greedy=True)
    width = max(map(len, CONTEXTS))
    ids = torch.tensor([[PAD] * (width - len(c)) + c for c in CONTEXTS])
    mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in CONTEXTS])
    theirs = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, min_new_tokens=6, do_sample=False,
                            pad_token_id=PAD, eos_token_id=None)[:, width:].tolist()
    assert [s.ids for s in ours] == theirs
    assert not any(s.stopped for s in ours)  # cut by the length limit


def test_reported_logprobs_are_the_trainers_full_forward_at_the_same_temperature(model):
    torch.manual_seed(1)
    out = sample(model, CONTEXTS, max_new_tokens=8, pad_id=PAD, stop_ids=[], temperature=0.7)
    for context, s in zip(CONTEXTS, out):
        sequence = torch.tensor([context + s.ids])
        full = token_logprobs(model, sequence, torch.ones_like(sequence), temperature=0.7)[0, len(context) - 1:]
        assert torch.allclose(full, torch.tensor(s.logprobs), atol=1e-5)


def test_empirical_frequencies_follow_the_distribution(model):
    torch.manual_seed(2)
    context = [3, 14, 15]
    out = sample(model, [context] * 3000, max_new_tokens=1, pad_id=PAD, stop_ids=[], temperature=2.0)
    probs = torch.softmax(model(torch.tensor([context])).logits[0, -1] / 2.0, -1).detach()
    counts = torch.bincount(torch.tensor([s.ids[0] for s in out]), minlength=VOCAB)
    seen = probs * 3000 >= 5  # chi-square needs expected counts of 5 or more; the rest pooled into one bin
    observed, expected = counts[seen].tolist(), (probs[seen] * 3000).tolist()
    if not seen.all():
        observed.append(int(counts[~seen].sum()))
        expected.append(float(probs[~seen].sum() * 3000))
    assert len(observed) > 5  # a real test of the shape, not one dominant token
    assert chisquare(observed, expected, sum_check=False).pvalue > 1e-3


def test_a_generator_per_row_draws_from_the_distribution_and_never_a_token_of_zero_probability(model):
    """`rollout.seeding: sample`: a row's token from its own generator (inverse CDF), whatever rows share its batch."""
    context = [3, 14, 15]
    probs = torch.softmax(model(torch.tensor([context])).logits[0, -1] / 2.0, -1).detach()
    probs[[2, 5]] = 0.0  # as suppressed ids and a nucleus cut leave them
    probs /= probs.sum()
    rows = 4000
    generators = [torch.Generator().manual_seed(1000 + k) for k in range(rows)]
    tokens = draw(probs.expand(rows, -1), generators).squeeze(-1)
    counts = torch.bincount(tokens, minlength=VOCAB)
    assert counts[[2, 5]].sum() == 0
    seen, pooled = probs * rows >= 5, (probs * rows < 5) & (probs > 0)
    observed, expected = counts[seen].tolist(), (probs[seen] * rows).tolist()
    if pooled.any():
        observed.append(int(counts[pooled].sum()))
        expected.append(float(probs[pooled].sum() * rows))
    assert len(observed) > 5 and chisquare(observed, expected, sum_check=False).pvalue > 1e-3
    # a row's draw depends on its generator alone: the same rows drawn in another batch, in another order
    again = [torch.Generator().manual_seed(1000 + k) for k in range(rows)]
    order = torch.randperm(rows, generator=torch.Generator().manual_seed(0))
    assert torch.equal(draw(probs.expand(rows, -1), [again[k] for k in order.tolist()]).squeeze(-1), tokens[order])
    # the last token's interval ends at the total mass: a uniform just below 1 lands on it
    edge = torch.tensor([[0.25, 0.25, 0.0, 0.5]])
    assert draw(edge, [torch.Generator().manual_seed(0)]).item() in (0, 1, 3)


def test_shared_prompt_prefilled_once_and_stopped_rows_leave_the_batch(model):
    batch_sizes = []
    hook = model.register_forward_pre_hook(lambda m, args, kw: batch_sizes.append(kw["input_ids"].shape),
                                           with_kwargs=True)
    try:
        torch.manual_seed(3)
        out = sample(model, CONTEXTS, max_new_tokens=10, pad_id=PAD, stop_ids=list(range(0, VOCAB, 2)))
    finally:
        hook.remove()
    assert batch_sizes[0] == (3, 5)  # three distinct contexts, padded to the longest
    # after the prefill, step k decodes exactly the rows whose continuation is longer than k tokens
    for step, shape in enumerate(batch_sizes[1:], start=1):
        assert shape == (sum(len(s.ids) > step for s in out), 1)
    for s in out:
        assert s.stopped == (s.ids[-1] % 2 == 0)  # an even id stops a row, and nothing but a stop ends it early
        assert all(t % 2 for t in s.ids[:-1])
        assert s.stopped or len(s.ids) == 10


def test_multi_token_stop_strings_end_a_row_where_they_complete(model):
    letters = "abcdefghijklmnopqrstuvwx"
    decode = lambda ids: "".join(letters[i] for i in ids)  # noqa: E731
    torch.manual_seed(4)
    out = sample(model, CONTEXTS * 4, max_new_tokens=30, pad_id=PAD, stop_ids=[], temperature=3.0,
                 stop_strings=("ab", "qq"), decode=decode)
    for s in out:
        text = decode(s.ids)
        first = min((text.find(x) + 2 for x in ("ab", "qq") if x in text), default=None)
        if s.stopped:
            assert first == len(text)  # stopped right where a stop string first completes
        else:
            assert first is None and len(text) == 30
    assert any(s.stopped for s in out)


# ------------------------------------------------------------------------------------------------ fixed shapes
def test_the_static_decoder_decodes_greedily_as_the_dynamic_one(model):
    from sigx.engine.static_sampler import StaticDecoder

    kwargs = dict(max_new_tokens=6, pad_id=PAD, stop_ids=[1], greedy=True)
    dynamic = sample(model, CONTEXTS, **kwargs)
    static = StaticDecoder(model).sample(CONTEXTS, **kwargs)
    assert [s.ids for s in static] == [d.ids for d in dynamic] and [s.stopped for s in static] == [d.stopped for d in dynamic]
    for s, d in zip(static, dynamic):
        assert s.logprobs == pytest.approx(d.logprobs, abs=1e-5)


def test_in_bf16_the_static_cache_receives_keys_and_values_of_one_dtype(model, monkeypatch):
    """On CUDA, autocast alone left the keys float32 (rotary in the embeddings' dtype) and the values bf16, and
    the static cache could not hold both: the residual stream must be in the decode dtype from the start."""
    from transformers.cache_utils import StaticLayer

    from sigx.engine.static_sampler import StaticDecoder

    seen = []
    original = StaticLayer.update

    def spy(self, key_states, value_states, *args, **kwargs):
        seen.append((key_states.dtype, value_states.dtype))
        return original(self, key_states, value_states, *args, **kwargs)

    monkeypatch.setattr(StaticLayer, "update", spy)
    out = StaticDecoder(model, dtype=torch.bfloat16).sample(CONTEXTS, max_new_tokens=4, pad_id=PAD, stop_ids=[1])
    assert seen and set(seen) == {(torch.bfloat16, torch.bfloat16)}
    assert all(len(s.ids) >= 1 and all(math.isfinite(x) for x in s.logprobs) for s in out)


def test_the_static_decoders_logprobs_are_the_trainers_and_its_draws_follow_the_distribution(model):
    from sigx.engine.static_sampler import StaticDecoder

    decoder = StaticDecoder(model)
    generator = torch.Generator().manual_seed(3)
    out = decoder.sample(CONTEXTS, max_new_tokens=5, pad_id=PAD, stop_ids=[1], temperature=0.7, generator=generator)
    for context, s in zip(CONTEXTS, out):
        sequence = torch.tensor([context + s.ids])
        full = token_logprobs(model, sequence, torch.ones_like(sequence), temperature=0.7)[0, len(context) - 1:]
        assert torch.allclose(torch.tensor(s.logprobs), full, atol=1e-5)
    # first tokens of one context, 3000 draws: chi-square against the softmax the trainer computes
    draws = decoder.sample([[5, 6, 7]] * 3000, max_new_tokens=1, pad_id=PAD, stop_ids=[1], temperature=1.3,
                           generator=torch.Generator().manual_seed(4))
    counts = torch.bincount(torch.tensor([d.ids[0] for d in draws]), minlength=VOCAB).float()
    probs = torch.softmax(model(input_ids=torch.tensor([[5, 6, 7]])).logits[0, -1] / 1.3, -1).detach()
    keep = probs * 3000 >= 5
    expected = probs[keep] * 3000
    assert chisquare(counts[keep], expected * counts[keep].sum() / expected.sum()).pvalue > 1e-3


def test_packed_decode_attention_is_transformers_sdpa_with_copied_heads():
    """One query token, 8 query heads over 2 KV heads, a padding mask: the packed layout (no KV copy) gives
    transformers' own result (``repeat_kv`` then SDPA), head for head; other shapes are passed through."""
    from types import SimpleNamespace

    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from sigx.engine.decode_attention import decode_sdpa_attention_forward

    torch.manual_seed(1)
    module = SimpleNamespace(num_key_value_groups=4, is_causal=True, training=False)
    query, key, value = torch.randn(3, 8, 1, 16), torch.randn(3, 2, 10, 16), torch.randn(3, 2, 10, 16)
    mask = torch.ones(3, 1, 1, 10, dtype=torch.bool)
    mask[0, ..., :4] = False  # left padding of row 0
    mask[:, ..., 8:] = False  # cache positions not written yet
    packed, _ = decode_sdpa_attention_forward(module, query, key, value, mask, scaling=0.25)
    reference, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.25)
    assert packed.shape == reference.shape == (3, 1, 8, 16)
    assert torch.allclose(packed, reference, atol=1e-6)
    # head 5 reads KV head 5 // 4 = 1 only: changing KV head 0 leaves it alone
    changed = key.clone()
    changed[:, 0] += 1.0
    again, _ = decode_sdpa_attention_forward(module, query, changed, value, mask, scaling=0.25)
    assert torch.equal(again[:, :, 4:], packed[:, :, 4:]) and not torch.allclose(again[:, :, :4], packed[:, :, :4])
    prefill = torch.randn(3, 8, 5, 16)  # several query tokens: transformers' path, bit for bit
    causal = torch.ones(3, 1, 5, 10, dtype=torch.bool).tril(diagonal=5)
    assert torch.equal(decode_sdpa_attention_forward(module, prefill, key, value, causal)[0],
                       sdpa_attention_forward(module, prefill, key, value, causal)[0])


def test_the_static_decoders_steps_copy_no_kv_heads_and_leave_the_trainers_attention_as_it_was(model, monkeypatch):
    """Every decode step goes through the packed attention (transformers before 5.2x copied the cache per
    step there, and later ones still do under torch.compile), only the prefill copies KV heads, and the
    model's attention is SDPA again afterwards."""
    import transformers.integrations.sdpa_attention as sdpa
    from transformers import AttentionInterface

    from sigx.engine import decode_attention
    from sigx.engine.static_sampler import StaticDecoder

    copies, packed_calls = [], []
    repeat_kv, packed = sdpa.repeat_kv, decode_attention.decode_sdpa_attention_forward
    monkeypatch.setattr(sdpa, "repeat_kv", lambda hidden, n_rep: copies.append(n_rep) or repeat_kv(hidden, n_rep))

    def spy(module, query, *args, **kwargs):
        packed_calls.append(query.shape[2])
        return packed(module, query, *args, **kwargs)

    monkeypatch.setitem(AttentionInterface._global_mapping, decode_attention.NAME, spy)
    out = StaticDecoder(model).sample(CONTEXTS, max_new_tokens=6, pad_id=PAD, stop_ids=[1])
    layers = model.config.num_hidden_layers
    decode_steps = max(len(s.ids) for s in out) - 1
    assert decode_steps >= 1
    assert packed_calls.count(1) == decode_steps * layers
    assert len(copies) == 2 * layers  # keys and values of the prefill only
    assert model.config._attn_implementation == "sdpa"


def test_the_static_decoder_reuses_its_cache_and_a_reused_cache_decodes_as_a_fresh_one(model):
    """The cache's tensors are static addresses for the CUDA graphs: kept across calls of one shape (reset
    in between), never carrying anything from the previous call into the next."""
    from sigx.engine.static_sampler import StaticDecoder

    def draw_from(decoder, contexts, seed):
        out = decoder.sample(contexts, max_new_tokens=6, pad_id=PAD, stop_ids=[1], temperature=1.2,
                             generator=torch.Generator().manual_seed(seed))
        return [(s.ids, s.logprobs, s.stopped) for s in out]

    decoder = StaticDecoder(model)
    first = draw_from(decoder, CONTEXTS, seed=5)
    (cache,) = decoder._caches.values()
    keys = cache.layers[0].keys
    draw_from(decoder, [[9, 3], [4, 8]], seed=6)  # another shape in between
    assert draw_from(decoder, CONTEXTS, seed=5) == first
    assert decoder._caches[(len(CONTEXTS), 32 + 6)].layers[0].keys is keys  # the same tensors, reset
    assert draw_from(StaticDecoder(model), CONTEXTS, seed=5) == first


def test_packed_decode_attention_leaves_other_attention_features_to_transformers(monkeypatch):
    """A softcap, attention sinks or a position bias are not plain SDPA: such calls go to transformers."""
    from types import SimpleNamespace

    from sigx.engine import decode_attention

    calls = []
    monkeypatch.setattr(decode_attention, "sdpa_attention_forward", lambda *a, **k: calls.append(k) or ("theirs", None))
    module = SimpleNamespace(num_key_value_groups=2, is_causal=True, training=False)
    query, key, value = torch.randn(1, 4, 1, 8), torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8)
    plain = dict(cache_position=torch.tensor([4]), position_ids=torch.tensor([[4]]), sliding_window=None)
    assert decode_attention.decode_sdpa_attention_forward(module, query, key, value, None, **plain)[0].shape == (1, 1, 4, 8)
    for extra in ({"softcap": 30.0}, {"s_aux": torch.zeros(4)}, {"position_bias": torch.zeros(1, 4, 1, 5)}):
        assert decode_attention.decode_sdpa_attention_forward(module, query, key, value, None, **plain, **extra)[0] == "theirs"
    assert len(calls) == 3
