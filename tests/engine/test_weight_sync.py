"""The in-place weight push that keeps a separate rollout engine (vLLM on GPU) on the trained policy, checked on
CPU: a transformers copy fed by the same push must give exactly the policy's log-probs and samples after
updates; the behaviour log-probs; the vLLM backend's pure parts and its errors. (That micro-batching does not
change the update is tests/test_update.py's.)"""

import copy
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

from sigx.config import RecipeError, RolloutConfig, load_recipe
from sigx.engine.rollout import SamplingParams, SyncedHFRolloutBackend
from sigx.engine.shared import SharedEngine
from sigx.engine.trainer import GRPOTrainer
from sigx.engine.trajectory import collate, token_logprobs
from sigx.engine.weight_sync import StateDictReceiver, buckets, checkpoint_name, iter_checkpoint_weights, push_weights
from sigx.engine.vllm_backend import VLLMRolloutBackend, turn_output
from sigx.models.tokenizer import build_char_tokenizer, load_tokenizer

RECIPES = Path(__file__).parents[2] / "recipes"
SHORT = ["training.steps=2", "training.eval_every=2", "training.prompts_per_step=4", "training.eval_samples=1",
         "rollout.group_size=4", "logging.wandb=disabled"]
SMALL = ["model.tiny.sft_steps=20", "model.tiny.hidden_size=64", "task.eval_prompts=8", "training.mini_batches=2"]


def _small_qwen(tie: bool) -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    return Qwen2ForCausalLM(Qwen2Config(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=tie))


@pytest.mark.parametrize("wrapped, plain", [
    ("_orig_mod.model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.up_proj.weight"),
    ("module._orig_mod.lm_head.weight", "lm_head.weight"),
    ("model.layers.1._checkpoint_wrapped_module.self_attn.q_proj.bias", "model.layers.1.self_attn.q_proj.bias"),
    ("model.norm.weight", "model.norm.weight"),
])
def test_checkpoint_names_drop_training_wrappers(wrapped, plain):
    assert checkpoint_name(wrapped) == plain


def test_buckets_bound_the_bytes_of_each_push():
    w = [(f"t{i}", torch.zeros(n, dtype=torch.float32)) for i, n in enumerate([10, 10, 30, 5, 1])]  # 4 bytes each
    groups = [[name for name, _ in b] for b in buckets(w, max_bytes=80)]
    assert groups == [["t0", "t1"], ["t2"], ["t3", "t4"]]  # t2 (120 B) exceeds the bound: a bucket of its own


def test_tied_embeddings_are_pushed_once_and_cast_to_the_engine_dtype():
    model = _small_qwen(tie=True)
    names = [n for n, _ in iter_checkpoint_weights(model)]
    assert "model.embed_tokens.weight" in names and "lm_head.weight" not in names
    assert len(names) == len(set(names))
    assert all(t.dtype == torch.bfloat16 for _, t in iter_checkpoint_weights(model, dtype=torch.bfloat16))


def test_a_lora_policy_is_pushed_merged_whole_even_when_freed_memory_is_reused_between_buckets():
    """Which weights are tied is read off the model, not off the pushed tensors: merged weights are new tensors,
    freed after their bucket, and a later one may get the same address (it must not be taken for a tied copy)."""
    from sigx.config import LoRAConfig
    from sigx.engine.lora import add_adapters

    model = _small_qwen(tie=True)
    expected = {n for n, _ in iter_checkpoint_weights(model)}
    add_adapters(model, LoRAConfig(r=4, alpha=8), seed=0)
    pushed = []

    class Receiver:
        def load_weights(self, weights):
            pushed.extend(name for name, _ in weights)

    push_weights(model, Receiver(), bucket_bytes=1)  # one tensor per bucket: each freed before the next is made
    assert sorted(pushed) == sorted(expected)  # every base name once, lm_head (tied) left out


def test_push_copies_in_place_and_a_wrong_name_is_an_error():
    policy, engine = _small_qwen(tie=False), _small_qwen(tie=False)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(1.0)
    storage = {n: p.data_ptr() for n, p in engine.named_parameters()}
    receiver = StateDictReceiver(engine)
    pushed = push_weights(torch.compile(policy), receiver, bucket_bytes=1024)  # compiled: names carry _orig_mod.
    assert pushed == len(policy.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(policy.state_dict().values(), engine.state_dict().values()))
    assert storage == {n: p.data_ptr() for n, p in engine.named_parameters()}  # same storage: in place
    with pytest.raises(KeyError, match="no weight named 'model.extra'"):
        receiver.load_weights([("model.extra", torch.zeros(1))])


def _engine(backend: str) -> SharedEngine:
    return SharedEngine(load_recipe(RECIPES / "tiny.yaml", SHORT + SMALL + [f"rollout.backend={backend}"]))


@pytest.fixture(scope="module")
def synced_engine():
    return _engine("hf_synced")


def _logprobs(model, batch):
    """Token log-probs of ``batch`` under ``model``, computed where the model lives (a GPU when there is one),
    returned on the CPU beside the batch."""
    with torch.no_grad():
        return token_logprobs(model, batch.input_ids.to(model.device), batch.attention_mask.to(model.device)).cpu()


def _copy_logprobs(engine: SharedEngine, trajectories):
    batch = collate(trajectories, torch.zeros(len(trajectories)), engine.tokenizer.pad_token_id)
    return _logprobs(engine.model, batch), _logprobs(engine.rollout.model, batch), batch.loss_mask > 0


def _update(trainer: GRPOTrainer):
    """One rollout and update with nonzero advantages (a barely warmed-up model may earn no reward at all, and
    all-zero advantages would leave the weights where they were)."""
    trajectories = trainer.rollout()
    advantages = torch.linspace(-1, 1, len(trajectories))
    trainer.update(collate(trajectories, advantages, trainer.tokenizer.pad_token_id))
    return trajectories


def test_synced_copy_gives_the_policys_exact_logprobs_after_every_update(synced_engine):
    recipe = load_recipe(RECIPES / "tiny.yaml", SHORT + SMALL + ["rollout.backend=hf_synced"])
    trainer = GRPOTrainer(recipe, synced_engine)
    assert isinstance(synced_engine.rollout, SyncedHFRolloutBackend)
    assert synced_engine.rollout.model is not synced_engine.model
    start = {k: v.clone() for k, v in synced_engine.model.state_dict().items()}
    for _ in range(2):
        trajectories = _update(trainer)
        ours, theirs, mask = _copy_logprobs(synced_engine, trajectories)
        assert torch.equal(ours[mask], theirs[mask])
    assert any(not torch.equal(start[k], v) for k, v in synced_engine.model.state_dict().items())  # it did move

    # The control: an update the engine is not told about leaves it sampling from stale weights.
    synced_engine.rollout.sync_weights = lambda model: None
    try:
        trajectories = _update(trainer)
        ours, theirs, mask = _copy_logprobs(synced_engine, trajectories)
        assert not torch.allclose(ours[mask], theirs[mask])
    finally:
        del synced_engine.rollout.sync_weights
    # A new run resets the policy to the base weights and pushes them: the copy is back on the base.
    GRPOTrainer(recipe, synced_engine)
    assert all(torch.equal(start[k], v) for k, v in synced_engine.rollout.model.state_dict().items())


def test_synced_backend_trains_exactly_like_sampling_from_the_policy(synced_engine):
    """Same seed, same recipe: the run on the pushed copy samples the same tokens and ends on the same weights
    as the run that samples from the training model itself."""
    samples = []
    for backend, engine in (("hf", _engine("hf")), ("hf_synced", synced_engine)):
        trainer = GRPOTrainer(load_recipe(RECIPES / "tiny.yaml", SHORT + SMALL + [f"rollout.backend={backend}"]),
                              engine)
        _update(trainer)
        _update(trainer)
        samples.append(([t.completion_ids for t in trainer.rollout()],
                        {k: v.clone() for k, v in engine.model.state_dict().items()}))
    (ids_hf, weights_hf), (ids_synced, weights_synced) = samples
    assert ids_hf == ids_synced
    assert all(torch.equal(weights_hf[k], weights_synced[k]) for k in weights_hf)


def test_behaviour_logprobs_are_the_pre_update_policys_on_every_row(synced_engine):
    """The first mini-batch's training forward doubles as its behaviour pass: every row must still end up with
    the log-probs of the weights that sampled it, and the sampler's own log-probs must agree with them."""
    recipe = load_recipe(RECIPES / "tiny.yaml", SHORT + SMALL + ["rollout.backend=hf_synced"])
    trainer = GRPOTrainer(recipe, synced_engine)
    # The sampler renormalises over the non-special tokens, which this barely warmed-up model still gives
    # some mass; without that suppression its log-probs must be the trainer's.
    suppressed, synced_engine.rollout._suppress = synced_engine.rollout._suppress, []
    try:
        trajectories = trainer.rollout()
    finally:
        synced_engine.rollout._suppress = suppressed
    batch = collate(trajectories, torch.linspace(-1, 1, len(trajectories)), synced_engine.tokenizer.pad_token_id)
    before = _logprobs(synced_engine.model, batch)
    metrics = trainer.update(batch)
    after = _logprobs(synced_engine.model, batch)
    mask = batch.loss_mask > 0
    assert recipe.training.mini_batches == 2 and not torch.isnan(batch.old_logprobs[mask]).any()
    assert torch.allclose(batch.old_logprobs[mask], before[mask], atol=1e-5)
    assert not torch.allclose(after[mask], before[mask], atol=1e-3)  # the policy moved in between
    assert metrics["rollout/logprob_gap"] < 1e-4  # KV-cached decoding = the training forward


def test_dropout_is_switched_off_at_load_so_train_mode_is_deterministic():
    from sigx.models.loading import disable_dropout

    model = _small_qwen(tie=False)
    model.config.attention_dropout = 0.5
    model.model.layers[0].self_attn.attention_dropout = 0.5
    model.lm_head = torch.nn.Sequential(torch.nn.Dropout(0.5), model.lm_head)
    disable_dropout(model)
    assert model.lm_head[0].p == 0.0 and model.model.layers[0].self_attn.attention_dropout == 0.0
    model.train()
    ids = torch.randint(0, 32, (2, 6))
    assert torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)


def test_gradient_checkpointing_is_really_on_during_updates_and_changes_nothing():
    """transformers checkpoints only in train mode: an update run in eval mode silently keeps every activation.
    Counted directly: the tensors autograd saves for backward during an update, with and without it."""
    results = []
    for checkpointing in ("false", "true"):
        recipe = load_recipe(RECIPES / "tiny.yaml", SHORT + SMALL + [f"model.gradient_checkpointing={checkpointing}"])
        engine = SharedEngine(recipe)
        trainer = GRPOTrainer(recipe, engine)
        trajectories = trainer.rollout()
        batch = collate(trajectories, torch.linspace(-1, 1, len(trajectories)), engine.tokenizer.pad_token_id)
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
            trainer.update(batch)
        results.append((sum(saved), {k: v.clone() for k, v in engine.model.state_dict().items()}))
    (plain_saved, plain), (ckpt_saved, ckpt) = results
    assert ckpt_saved < plain_saved / 3  # only each layer's input is kept; its insides are recomputed
    assert all(torch.allclose(plain[k], ckpt[k], atol=1e-6) for k in plain)


def test_vllm_turn_output_keeps_ids_stop_reason_and_sampled_logprobs():
    step = lambda token, lp: {token: SimpleNamespace(logprob=lp)}  # noqa: E731 (vLLM: id -> Logprob per step)
    done = SimpleNamespace(token_ids=[5, 7], finish_reason="stop", logprobs=[step(5, -0.5), step(7, -1.25)])
    cut = SimpleNamespace(token_ids=[5], finish_reason="length", logprobs=None)
    assert turn_output(done).ids == [5, 7] and turn_output(done).stopped
    assert turn_output(done).logprobs == [-0.5, -1.25]
    assert not turn_output(cut).stopped and turn_output(cut).logprobs is None


def test_vllm_backend_without_a_gpu_is_a_one_line_recipe_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: tests/test_gpu.py covers the vLLM backend")
    with pytest.raises(RecipeError, match=r"^rollout.backend: 'vllm' needs a CUDA GPU and none is visible"):
        _engine("vllm")


class FakeLLM:
    """Records what the backend asks of ``vllm.LLM``; its "model" is a transformers copy with ``load_weights``."""

    def __init__(self, engine_model, kwargs):
        self.engine_model, self.kwargs, self.calls = engine_model, kwargs, []

    def get_tokenizer(self):  # as vLLM loads it: AutoTokenizer on the folder it was given
        return AutoTokenizer.from_pretrained(self.kwargs["tokenizer"])

    def sleep(self, level):
        self.calls.append(("sleep", level))

    def wake_up(self, tags=None):
        self.calls.append(("wake_up", tuple(tags) if tags else None))

    def apply_model(self, fn):
        self.calls.append(("apply_model",))
        return [fn(self.engine_model)]

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache",))

    def generate(self, prompts, sampling, use_tqdm):
        self.calls.append(("generate", len(prompts)))
        step = lambda token: {token: SimpleNamespace(logprob=-0.25)}  # noqa: E731
        return [SimpleNamespace(outputs=[SimpleNamespace(token_ids=[7, 2], finish_reason="stop",
                                                         logprobs=[step(7), step(2)])]) for _ in prompts]


@pytest.fixture
def fake_vllm(monkeypatch, tmp_path):
    """vllm replaced by a recorder, CUDA reported present: the backend's orchestration runs on CPU."""
    policy = _small_qwen(tie=True)
    engine_copy = copy.deepcopy(policy)
    llms = []
    vllm = types.ModuleType("vllm")
    vllm.LLM = lambda **kwargs: llms.append(FakeLLM(StateDictReceiver(engine_copy), kwargs)) or llms[-1]
    vllm.SamplingParams = lambda **kwargs: SimpleNamespace(**kwargs)
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = dict
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    policy.config.save_pretrained(tmp_path)
    build_char_tokenizer().save_pretrained(tmp_path)
    return policy, engine_copy, llms, str(tmp_path)


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_vllm_backend_pushes_on_waking_and_sleeps_through_training(fake_vllm):
    policy, engine_copy, llms, path = fake_vllm
    config = RolloutConfig(backend="vllm", vllm_sleep=True, max_model_len=1 << 20, temperature=0.7)
    backend = VLLMRolloutBackend(path, load_tokenizer(path), config, seed=0)
    llm = llms[0]
    assert llm.kwargs["enable_sleep_mode"] and llm.kwargs["logprobs_mode"] == "processed_logprobs"
    assert llm.kwargs["max_model_len"] == policy.config.max_position_embeddings  # capped at the model's own
    assert llm.calls == [("sleep", 1)]  # built, then asleep until the first rollout

    with torch.no_grad():
        for p in policy.parameters():
            p.add_(1.0)
    backend.sync_weights(policy)  # an update while asleep: deferred (its weights are on the CPU)
    assert llm.calls == [("sleep", 1)] and not _same(policy, engine_copy)

    outputs = backend.generate_turn([[1, 5], [1]], ("]",), SamplingParams(8, temperature=0.7))
    assert llm.calls[1:] == [("wake_up", ("weights",)), ("apply_model",), ("wake_up", None),
                             ("reset_prefix_cache",), ("generate", 2), ("sleep", 1)]
    assert _same(policy, engine_copy)  # the push landed before any token was generated
    assert outputs[0].ids == [7, 2] and outputs[0].stopped and outputs[0].logprobs == [-0.25, -0.25]

    llm.calls.clear()
    with backend.generating():  # a multi-turn rollout: one wake, one sleep around all its turns
        backend.generate_turn([[1]], ("]",), SamplingParams(8))
        backend.generate_turn([[1]], ("]",), SamplingParams(8))
        with torch.no_grad():
            next(policy.parameters()).add_(1.0)
        backend.sync_weights(policy)  # awake: pushed at once
    assert llm.calls == [("wake_up", ("weights",)), ("wake_up", None), ("generate", 1), ("generate", 1),
                         ("apply_model",), ("reset_prefix_cache",), ("sleep", 1)]
    assert _same(policy, engine_copy)


def test_vllm_backend_refuses_an_engine_tokenizer_that_decodes_differently(fake_vllm, monkeypatch):
    """vLLM finds stop strings in its own tokenizer's decoding: the tiny model's tokenizer, loaded by vLLM's
    AutoTokenizer (transformers 5: Qwen2Tokenizer), decodes as sigx's does (the fixture's backends are built);
    one that decodes differently (here: dropping newlines) is a one-line error naming the model."""
    _, _, llms, path = fake_vllm
    config = RolloutConfig(backend="vllm", vllm_sleep=False, max_model_len=64)
    ours = load_tokenizer(path)
    VLLMRolloutBackend(path, ours, config, seed=0)
    assert type(llms[0].get_tokenizer()).__name__ != type(ours).__name__  # another class, the same decoding
    monkeypatch.setattr(FakeLLM, "get_tokenizer",
                        lambda self: SimpleNamespace(decode=lambda ids: ours.decode(ids).replace("\n", "")))
    with pytest.raises(RecipeError, match=r"^rollout.backend: vllm's tokenizer for .* decodes .* use backend: hf$"):
        VLLMRolloutBackend(path, ours, config, seed=0)


def test_vllm_contexts_at_the_length_limit_end_truncated_instead_of_failing(fake_vllm):
    policy, _, llms, path = fake_vllm
    config = RolloutConfig(backend="vllm", vllm_sleep=False, max_model_len=64)
    backend = VLLMRolloutBackend(path, load_tokenizer(path), config, seed=0)
    generated = []
    llms[0].generate = lambda prompts, sampling, use_tqdm: generated.append(
        [(len(p["prompt_token_ids"]), s.max_tokens) for p, s in zip(prompts, sampling)]) or [
        SimpleNamespace(outputs=[SimpleNamespace(token_ids=[7], finish_reason="length", logprobs=None)])
        for _ in prompts]
    outputs = backend.generate_turn([[1] * 10, [1] * 64, [1] * 60], (), SamplingParams(8))
    assert generated == [[(10, 8), (60, 4)]]  # the full context is skipped; the other is capped to fit
    assert outputs[1].ids == [] and not outputs[1].stopped  # ends truncated
    assert outputs[0].ids == [7] and outputs[2].ids == [7]


def test_vllm_sampling_params_keep_stops_special_tokens_and_logprobs(fake_vllm):
    from sigx.engine.vllm_backend import vllm_sampling_params

    sampled = vllm_sampling_params(SamplingParams(16, temperature=0.7, top_p=0.9), ("</search>",), [2], seed=5)
    assert (sampled.temperature, sampled.top_p, sampled.max_tokens, sampled.seed) == (0.7, 0.9, 16, 5)
    assert sampled.stop == ["</search>"] and sampled.include_stop_str_in_output and sampled.stop_token_ids == [2]
    assert sampled.logprobs == 0 and not sampled.skip_special_tokens
    greedy = vllm_sampling_params(SamplingParams(16, greedy=True), (), [2], seed=5)
    assert greedy.temperature == 0.0 and greedy.stop is None


def test_the_static_decoder_runs_a_grpo_step_and_samples_what_the_trainer_scores():
    """rollout.decoder static through the hf backend: a whole step, and the sampler's log-probs are the
    trainer's (fp32 on the CPU: the same function)."""
    recipe = load_recipe(RECIPES / "tiny.yaml", SHORT + SMALL + ["rollout.decoder=static", "training.skip_zero_advantage=false"])
    engine = SharedEngine(recipe)
    engine.rollout._suppress = []  # this barely warmed-up model gives special tokens mass the sampler would drop
    metrics = GRPOTrainer(recipe, engine).step().metrics
    assert engine.rollout.static is not None
    assert metrics["rollout/logprob_gap"] < 1e-4 and metrics["response_tokens"] > 0
