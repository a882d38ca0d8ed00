"""The in-place weight push that keeps a separate rollout engine (vLLM on GPU) on the trained policy, checked on
CPU: a transformers copy fed by the same push must give exactly the policy's log-probs and samples after
updates; micro-batching must not change the update; the vLLM backend's pure parts and its errors."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from sigx.config import RecipeError, load_recipe
from sigx.engine.rollout import SyncedHFRolloutBackend
from sigx.engine.shared import SharedEngine
from sigx.engine.trainer import GRPOTrainer
from sigx.engine.trajectory import collate, token_logprobs
from sigx.engine.weight_sync import StateDictReceiver, buckets, checkpoint_name, iter_checkpoint_weights, push_weights
from sigx.engine.vllm_backend import turn_output

RECIPES = Path(__file__).parent.parent / "recipes"
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


def _copy_logprobs(engine: SharedEngine, trajectories):
    batch = collate(trajectories, torch.zeros(len(trajectories)), engine.tokenizer.pad_token_id)
    with torch.no_grad():
        ours = token_logprobs(engine.model, batch.input_ids, batch.attention_mask)
        theirs = token_logprobs(engine.rollout.model, batch.input_ids, batch.attention_mask)
    return ours, theirs, batch.loss_mask > 0


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


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean"])
def test_micro_batching_accumulates_to_the_same_update(synced_engine, aggregation):
    extra = SHORT + SMALL + [f"training.loss_aggregation={aggregation}", "training.mini_batches=1",
                             "rollout.backend=hf_synced"]
    runs = []
    for micro in ([], ["training.micro_batch_size=3"]):
        recipe = load_recipe(RECIPES / "tiny.yaml", extra + micro)
        trainer = GRPOTrainer(recipe, synced_engine)  # resets to the base weights; seeds torch
        # plain SGD: the weight change is the accumulated gradient itself (Adam's first step, ~g/|g|, would
        # magnify rounding in near-zero gradients)
        trainer.optimizer = torch.optim.SGD(synced_engine.model.parameters(), lr=1.0)
        trajectories = trainer.rollout()
        batch = collate(trajectories, torch.linspace(-1, 1, len(trajectories)), synced_engine.tokenizer.pad_token_id)
        metrics = trainer.update(batch)
        runs.append(({k: v.clone() for k, v in synced_engine.model.state_dict().items()}, metrics))
    (whole, m_whole), (micro, m_micro) = runs
    assert all(torch.allclose(whole[k], micro[k], atol=1e-6) for k in whole)
    assert any(not torch.allclose(whole[k], synced_engine.base_state[k]) for k in whole)  # the update is real
    assert m_whole["loss"] == pytest.approx(m_micro["loss"], abs=1e-5)
    assert m_whole["grad_norm"] == pytest.approx(m_micro["grad_norm"], rel=1e-4)


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
