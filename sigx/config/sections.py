"""The run's own sections: the policy (``model``), how it samples (``rollout``), how it updates
(``training``, with ``lora``) and where it logs (``logging``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from sigx.config.base import FIELD_PROBLEM, MAX_NEW_TOKENS, Names, Strict, Switch, field_names_with_role, role


#: what ``rollout.backend``, ``training.advantage`` and ``training.policy_loss`` may name: the built-in ones here,
#: and those registered in the engine's registries (sigx.engine.backends, .advantages, .losses), which add their
#: names here, so that a recipe naming a registered one is valid
ROLLOUT_BACKEND_NAMES = Names("rollout backend", ["hf", "hf_synced", "vllm"])
ADVANTAGE_NAMES = Names("advantage estimator", ["grpo", "dr_grpo", "rloo"])
POLICY_LOSS_NAMES = Names("policy loss", ["ppo_clip", "gspo"])
RolloutBackendName = ROLLOUT_BACKEND_NAMES.field
AdvantageName = ADVANTAGE_NAMES.field
PolicyLossName = POLICY_LOSS_NAMES.field


# --------------------------------------------------------------------------------------------------- model
class TinyModelConfig(Strict):
    """Shape and warm start of the built-in ``sigx/tiny`` model (used only when ``model.name == "sigx/tiny"``).

    The SFT warm start is deliberately short and trained on demonstrations of which ``sft_noise`` carry a
    wrong step, so the starting policy is competent but imperfect and RL has room to improve it.
    """

    hidden_size: int = Field(128, ge=16, le=16384, description="width of the Qwen2-architecture model (at most 16384; "
                             "a shape whose warm start cannot fit in memory is refused before it is built)")
    num_layers: int = Field(3, ge=1, le=256, description="transformer layers (at most 256)")
    num_heads: int = Field(4, ge=1, le=1024, description="attention heads (must divide hidden_size; at most 1024)")
    num_kv_heads: int = Field(2, ge=1, description="key/value heads, grouped-query attention (must divide num_heads)")
    intermediate_size: int = Field(384, ge=16, le=131072, description="MLP width (at most 131072)")
    tie_embeddings: bool = Field(False, description="share the input embedding and the output head")
    sft_steps: int = Field(1000, ge=0, description="steps of the SFT warm start (0: random weights, for benchmarks)")
    sft_batch_size: int = Field(64, ge=1, description="demonstrations per SFT step")
    sft_lr: float = Field(3e-3, gt=0, description="SFT learning rate (AdamW, linear warm-up and decay)")
    sft_noise: float = Field(0.3, ge=0, le=1, description="share of SFT demonstrations with one deliberate slip: an "
                             "imperfect start that RL can improve")
    sft_seed: int = Field(0, ge=0, description="seed of the warm start (weights and data): part of the cache key")
    sft_critique_fraction: float = Field(
        0.2, ge=0, lt=1, description="share of SFT examples that are critiques (question + response -> verdict), so "
        "the base can already judge responses, as an instruct model can; every cell shares this base")
    sft_critique_noise: float = Field(0.2, ge=0, le=0.5, description="share of SFT critique verdicts flipped")
    sft_critique_style: Literal["verdict", "verify"] = Field(
        "verdict", description="SFT critiques: verdict: the bare yes/no; verify: the question solved anew, then "
        "the verdict (single-turn tasks), or the chain of searches re-walked (task search), a critic that checks by "
        "re-deriving, so the base judges above chance")
    sft_critique_steps: int = Field(
        0, ge=0, description="a critique phase after the sft_steps (0: none): this many more steps whose batches mix "
        "critique examples and task demonstrations (sft_critique_phase_share; the policy keeps practising its task "
        "while the critic is learned), the learning-rate schedule restarted")
    sft_critique_phase_share: float = Field(
        0.5, gt=0, le=1, description="share of critique examples in the critique phase's batches (the rest are task "
        "demonstrations, so the policy keeps its task): higher teaches the critic more per step and adds less to "
        "the policy's warm start")

    @model_validator(mode="after")
    def _heads_divide(self) -> "TinyModelConfig":
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must be divisible by num_kv_heads ({self.num_kv_heads})")
        return self


class ModelConfig(Strict):
    """The policy: the built-in tiny model or any causal LM transformers can load."""

    name: str = Field("sigx/tiny", min_length=1, max_length=4096,
                      description="'sigx/tiny' (built locally) or a Hugging Face hub id / local path")
    tiny: TinyModelConfig = Field(TinyModelConfig(), description="shape and warm start of sigx/tiny")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="dtype of the trained weights "
                                                              "(keep float32 for fp32 master weights with autocast)")
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass: less "
                                         "memory, ~30% more compute; the update is the same", **role("layout"))

# --------------------------------------------------------------------------------------------------- rollout
class RolloutConfig(Strict):
    """How trajectories are sampled. ``hf`` samples from the training model itself (CPU default); ``vllm`` is
    the GPU engine, colocated with training, whose weights are pushed in place after every update;
    ``hf_synced`` samples from a separate transformers copy kept current by the same push (vLLM's situation
    on CPU: what the weight-sync tests use; on a GPU without vLLM, with ``dtype: bfloat16``, ``decoder: static``
    and ``compile: true``, the fast transformers rollout: bf16 weights, so no per-step casts)."""

    backend: RolloutBackendName = Field(
        "hf", description="hf: sample from the training model itself (CPU default); hf_synced: a separate pushed "
        "copy (in dtype bfloat16 with decoder static: the GPU choice without vLLM); vllm: the colocated GPU engine; "
        "or a backend registered with sigx.engine.backends.register_rollout_backend", **role("engine"))
    group_size: int = Field(8, ge=2, description="k responses sampled per prompt (the GRPO group)")
    max_new_tokens: int = Field(48, ge=1, le=MAX_NEW_TOKENS, description="per agent turn (at most 2^20: beyond any "
                                "model's context)")
    temperature: float = Field(1.0, gt=0, le=1e4, description="sampling temperature; the ratio's log-probs use it "
                               "too (at most 1e4: sampling is near uniform long before, and one beyond float32's "
                               "range made the scores of suppressed tokens NaN)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling (1: off; < 1 makes the sampler's log-probs "
                         "differ from the trainer's by construction)")
    staleness: int = Field(0, ge=0, le=64, description="off-policy regime of asynchronous RL: each step samples "
                           "from the weights of `staleness` steps earlier (their log-probs are the behaviour "
                           "policy of the ratio); 0: on-policy. Costs staleness + 1 weight copies in host memory")
    seeding: Literal["batch", "sample"] = Field(
        "batch", description="the rollout's random draws. batch: one stream for the whole batch (a sample's "
        "tokens depend on its batch; the default, which earlier results were made with); sample: a stream per "
        "sample, seeded from the run's rollout stream, so a sample's tokens depend on it alone: what lets "
        "`sigx train --nproc N` split the rollout (each process samples whole groups) and still sample what one "
        "process samples. The same distribution either way; other draws", **role("engine"))
    chat_template: Annotated[Literal["auto", "on", "off"], Switch] = Field(
        "auto", description="wrap prompts in the tokenizer's chat template (auto: when it has one; sigx/tiny has "
        "none)", **role("engine"))
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="weights of a separate rollout engine (vllm, hf_synced; pushed weights are cast to "
        "it); for hf with decoder static, the autocast dtype of decoding (its weights are cast at every step: "
        "hf_synced avoids that). auto: the training weights' dtype", **role("engine"))
    decoder: Literal["dynamic", "static"] = Field(
        "dynamic", description="hf/hf_synced decoding loop: dynamic (rows leave the batch as they stop: least "
        "arithmetic, the CPU's choice) or static (a static KV cache, fixed shapes, finished rows masked: one "
        "decode step that can be captured once, the GPU's choice)", **role("engine"))
    compile: bool = Field(False, description="decoder static: compile the decode step with torch.compile "
                          "(mode reduce-overhead: CUDA graphs on a GPU); the first call pays the compilation",
                          **role("engine"))
    gpu_memory_utilization: float = Field(0.3, gt=0, le=1, description="vllm: its share of GPU memory "
                                          "(weights + KV cache); the rest is left to training", **role("engine"))
    max_model_len: int = Field(4096, ge=16, description="vllm: longest prompt + completion it must hold",
                               **role("engine"))
    vllm_sleep: bool = Field(True, description="vllm: sleep (weights to CPU, KV cache freed) while training runs",
                             **role("engine"))
    vllm_enforce_eager: bool = Field(False, description="vllm: no CUDA graphs (slower, starts faster)",
                                     **role("engine"))


#: the rollout fields fixed when the shared engine builds its rollout backend; the rest vary per run
ENGINE_FIELDS = field_names_with_role(RolloutConfig, "engine")

# --------------------------------------------------------------------------------------------------- training
def _some_modules(value: str | list[str]) -> str | list[str]:
    if not value or any(not name for name in ([value] if isinstance(value, str) else value)):
        what = "names no layer" if not value else "holds an empty name"
        raise ValueError(f"{value!r} {what}; allowed: all-linear, or module names, e.g. [q_proj, v_proj]")
    return value


class LoRAConfig(Strict):
    """LoRA adapters through peft (``r: 0``: off, full fine-tuning): only the adapters train, the base weights stay
    frozen; the KL reference is the policy with its adapters off, a separate rollout engine receives merged
    weights, and checkpoints hold the adapters and their optimizer state only."""

    r: int = Field(0, ge=0, le=4096, description="adapter rank (0: no adapters, every weight trains)")
    alpha: float = Field(16.0, gt=0, description="scale numerator: the update is (alpha / r) B A (peft's lora_alpha)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapters' input while training; keep 0 so "
                           "the ratio's new and old log-probs come from one function")
    target_modules: Annotated[str | list[str], AfterValidator(_some_modules)] = Field(
        "all-linear", description="layers that get adapters: 'all-linear' (every linear layer but the output "
        "head, as peft reads it) or module names, e.g. [q_proj, v_proj]")


class TrainingConfig(Strict):
    """The GRPO update: steps, optimizer, loss, and how the batch is laid out in memory."""

    steps: int = Field(60, ge=1, le=10**9, description="GRPO steps (one rollout batch each)", **role("extent"))
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate (betas 0.9 / 0.99)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping by global norm")
    prompts_per_step: int = Field(16, ge=1, description="prompts per rollout batch (each sampled group_size times)")
    inner_epochs: int = Field(1, ge=1, description="passes over each rollout batch (PPO epochs)")
    mini_batches: int = Field(2, ge=1, description="optimizer steps per pass; >1 makes later updates off-policy")
    advantage: AdvantageName = Field("grpo", description="grpo: (r - mean) / std per group; dr_grpo: r - mean (Dr. "
                                     "GRPO); rloo: r - the mean of the group's other rewards (RLOO); or an estimator "
                                     "registered with sigx.engine.advantages.register_advantage")
    policy_loss: PolicyLossName = Field("ppo_clip", description="the baseline's loss (SSPO and SORL replace it when "
                                        "enabled): GRPO's token clip or GSPO; or a loss registered with "
                                        "sigx.engine.losses.register_policy_loss and training_settings")
    clip_eps: float = Field(0.2, gt=0, description="PPO band, low side [1 - eps, ...] (ppo_clip)")
    clip_eps_high: float | None = Field(None, gt=0, description="DAPO clip-higher; defaults to clip_eps")
    gspo_clip_eps: float = Field(3e-4, gt=0, description="GSPO's sequence-ratio band, low side (GSPO v2 sec. 5.1)")
    gspo_clip_eps_high: float = Field(4e-4, gt=0, description="GSPO's sequence-ratio band, high side (sec. 5.1)")
    loss_aggregation: Literal["token-mean", "seq-mean", "token-sum-norm"] = Field(
        "token-mean", description="token-mean: every generated token weighs the same (DAPO); seq-mean: every "
        "sequence (GRPO, GSPO); token-sum-norm: the tokens' sum over a constant, the sequences x the policy's token "
        "budget per episode (rollout.max_new_tokens x the task's turns), so a response's weight grows with its "
        "length and not with its group's (Dr. GRPO, arXiv 2503.20783 §3.2; TRL's loss_type dr_grpo). A loss that "
        "defines its own (SSPO) ignores it")
    mask_truncated: bool = Field(False, description="leave responses the token budget cut (rollout.max_new_tokens "
                                 "in their last turn) out of the loss, their rewards still in their group's "
                                 "advantages: DAPO's overlong filtering (arXiv 2503.14476 §3.4), TRL's "
                                 "mask_truncated_completions")
    kl_beta: float = Field(0.0, ge=0, description="weight of the k3 KL to the frozen base policy (0: none)")
    eval_every: int = Field(10, ge=1, description="steps between held-out evaluations (and at the last step)")
    eval_samples: int = Field(4, ge=1, description="sampled responses per held-out prompt at evaluation")
    checkpoint_every: int = Field(
        25, ge=0, description="steps between checkpoints (weights, optimizer, RNG streams) from which an "
        "interrupted run resumes exactly; 0: none. Deleted when the run completes", **role("extent"))
    micro_batch_size: int | None = Field(
        None, ge=1, description="sequences per forward/backward; gradients accumulate over a mini-batch's "
        "micro-batches (same update, bounded memory). None: the whole mini-batch at once", **role("layout"))
    micro_batch_tokens: int | None = Field(
        None, ge=1, description="padded tokens per forward/backward (rows x the longest row): a mini-batch's rows "
        "are sorted by length and packed greedily under this budget, so memory is bounded by tokens rather than "
        "rows and short rows are not padded to long ones (verl's dynamic batch size); a row longer than the "
        "budget gets a micro-batch of its own. Combines with micro_batch_size. None: no token bound",
        **role("layout"))
    skip_zero_advantage: bool = Field(
        True, description="leave rows whose advantage is exactly 0 (or with no loss token left: mask_truncated) out "
        "of the forward/backward: with no KL term and a loss proportional to the advantage their gradient is exactly "
        "zero, and the loss normaliser still counts them, so the update is the same for less work. Loss diagnostics "
        "then cover the trained rows",
        **role("layout"))
    rollout_correction: Literal["off", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask"] = Field(
        "off", description="importance correction for the gap between the sampling engine and the trainer (a "
        "bf16 or vLLM sampler): weights exp(logp_trainer - logp_sampler) per token or per sequence, truncated "
        "(TIS) or masked (MIS) outside [rollout_correction_min, rollout_correction_max] (TRL's "
        "vllm_importance_sampling_mode, verl's rollout correction); off: none")
    rollout_correction_min: float | None = Field(None, ge=0, description="lower bound of the weights (None: 0)")
    rollout_correction_max: float = Field(2.0, gt=1, description="upper bound of the weights")
    lora: LoRAConfig = Field(LoRAConfig(), description="LoRA adapters (r > 0) instead of full fine-tuning")
    autocast: Annotated[Literal["off", "bfloat16"], Switch] = Field(
        "off", description="mixed precision on CUDA: forward/backward in this dtype, weights and optimizer in "
        "the model's dtype (keep model.dtype float32 for fp32 master weights)")

    @model_validator(mode="after")
    def _correction_band(self) -> "TrainingConfig":
        low = self.rollout_correction_min
        if low is not None and low >= self.rollout_correction_max:  # torch.clamp would set every weight to max
            raise ValueError(f"{FIELD_PROBLEM}rollout_correction_min: {low:g} is not below rollout_correction_max "
                             f"({self.rollout_correction_max:g}): the band [min, max] holds no weight")
        return self

# --------------------------------------------------------------------------------------------------- logging
class LoggingConfig(Strict):
    """Where runs are written and mirrored."""

    wandb: Literal["offline", "online", "disabled"] = Field("offline", description="Weights & Biases mode (offline: "
                                                            "written locally, `wandb sync` later)")
    project: str = Field("sigx", description="W&B project")
    output_dir: str = Field("runs", min_length=1, max_length=4096, description="root of `sigx train`'s run "
                            "directories")
    wandb_unreachable: Literal["stop", "offline"] = Field(
        "stop", description="wandb: online and W&B cannot be reached (or refuses the key): stop with one line, or "
        "go on offline (written locally; `wandb sync` later), said in one warning line")
