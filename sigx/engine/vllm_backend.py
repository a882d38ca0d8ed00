"""The GPU rollout backend: one ``vllm.LLM`` per process, colocated with training on the same GPU.

Why this shape (the same choices as TRL's and verl's colocated modes):

- **One engine per process, reused.** The engine is built once by the shared engine and serves every run and
  every ablation cell of the process; a run starts by pushing the base weights into it, never by rebuilding it.
- **In-place weight sync.** After each update the trainer calls :meth:`sync_weights`; the policy's tensors go
  straight into the running engine's model through its ``load_weights`` (the path of
  :mod:`sigx.engine.weight_sync`, which a CPU test checks with a transformers receiver), then the prefix cache,
  which holds KV entries computed with the old weights, is reset. Nothing is written to disk.
  The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so ``LLM.apply_model`` hands our
  function the engine's ``nn.Module`` directly and the tensors are copied GPU to GPU.
- **Sharing one GPU.** ``rollout.gpu_memory_utilization`` caps vLLM's share (weights + KV cache); with
  ``rollout.vllm_sleep`` the engine also sleeps during training (its weights offloaded to CPU, its KV cache
  freed: vLLM's sleep mode level 1) and wakes for each rollout phase. A weight push that arrives while it sleeps
  is applied on waking, before any token is generated.
- **Log-probs.** vLLM returns the sampled tokens' log-probs after temperature (``processed_logprobs``), stored
  on the trajectory; the importance ratio is still taken against log-probs the training model recomputes,
  and the gap between the two is logged (``rollout/logprob_gap``).
- **Seeded sampling.** Each request gets a seed drawn from the caller's generator, so a seeded run samples the
  same way again and evaluation (with its own fixed-seed generator) sees the same noise in every run.

Tensor parallelism is not supported (one GPU per engine): the push writes whole, unsharded tensors.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import replace

import torch

from sigx.config import RecipeError
from sigx.engine.rollout import ROLLOUT_DTYPES, RolloutBackend, SamplingParams, TurnOutput
from sigx.engine.weight_sync import push_weights

# The engine core must live in this process for apply_model to reach its model without serialising tensors.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def require_vllm():
    """The vllm module, or a one-line error saying what is missing."""
    if not torch.cuda.is_available():
        raise RecipeError(["rollout.backend: 'vllm' needs a CUDA GPU and none is visible; use backend: hf on CPU"])
    try:
        import vllm
    except ImportError:
        raise RecipeError(["rollout.backend: 'vllm' needs the vllm package: pip install 'sigx[gpu]' "
                           "(or use backend: hf)"]) from None
    if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") != "0":
        raise RecipeError(["rollout.backend: 'vllm' runs its engine in-process for in-place weight sync; unset "
                           "VLLM_ENABLE_V1_MULTIPROCESSING or set it to 0"])
    return vllm


def model_context_length(model_path: str) -> int:
    """The model's own position limit (sigx/tiny: 512), which vLLM refuses to exceed."""
    from transformers import AutoConfig

    return getattr(AutoConfig.from_pretrained(model_path), "max_position_embeddings", None) or 1 << 30


def vllm_sampling_params(params: SamplingParams, stop_strings: tuple[str, ...], stop_token_ids: list[int],
                         seed: int):
    """sigx's sampling settings in vLLM's terms. Stop strings stay in the output (the environment reads them),
    special tokens are kept (the ids are what is trained on), and the sampled token's log-prob comes back."""
    from vllm import SamplingParams as VLLMSamplingParams

    return VLLMSamplingParams(
        n=1,
        temperature=0.0 if params.greedy else params.temperature,
        top_p=1.0 if params.greedy else params.top_p,
        max_tokens=params.max_new_tokens,
        stop=list(stop_strings) or None,
        include_stop_str_in_output=True,
        stop_token_ids=stop_token_ids,
        logprobs=0,
        seed=seed,
        skip_special_tokens=False,
    )


def turn_output(completion) -> TurnOutput:
    """A vLLM ``CompletionOutput`` as a :class:`TurnOutput`: ids, whether it stopped by itself (a stop string,
    EOS or a stop token, rather than the length cap), and the sampled ids' log-probs."""
    ids = list(completion.token_ids)
    logprobs = None
    if completion.logprobs:
        logprobs = [float(step[token].logprob) for step, token in zip(completion.logprobs, ids)]
    return TurnOutput(ids, completion.finish_reason == "stop", logprobs)


#: text a stop-string check must see as sigx does: spaces, a newline, the search task's tags, digits
DECODING_PROBE = "q: ann.boss 12\n<search> x y </search> <answer>3</answer>"


def check_same_decoding(engine_tokenizer, tokenizer, model_path: str) -> None:
    """vLLM loads its own tokenizer from the model's folder (``AutoTokenizer``, not sigx's ``load_tokenizer``).
    Prompts go to it as ids, so that tokenizer only decodes, and what it decodes is where vLLM looks for stop
    strings. Decoding that differs from sigx's would end turns where sigx would not (or miss ``</search>``), so
    the two are compared on a probe and a difference is a one-line error rather than silently different episodes.
    (The tiny model's generic tokenizer, loaded by AutoTokenizer as Qwen2Tokenizer, decodes the same.)"""
    ids = tokenizer.encode(DECODING_PROBE, add_special_tokens=False)
    ours, theirs = tokenizer.decode(ids), engine_tokenizer.decode(ids)
    if ours != theirs:
        raise RecipeError([f"rollout.backend: vllm's tokenizer for {model_path} ({type(engine_tokenizer).__name__}) "
                           f"decodes {ours!r} as {theirs!r}, so its stop strings would differ from sigx's; "
                           "use backend: hf"])


class VLLMRolloutBackend(RolloutBackend):
    def __init__(self, model_path: str, tokenizer, config, seed: int = 0):
        vllm = require_vllm()
        self.sleep_enabled = config.vllm_sleep
        self.dtype = ROLLOUT_DTYPES.get(config.dtype)  # None ("auto"): the engine's loader casts on copy
        self.max_model_len = min(config.max_model_len, model_context_length(model_path))
        self.llm = vllm.LLM(
            model=model_path,
            tokenizer=model_path,
            dtype=config.dtype,
            gpu_memory_utilization=config.gpu_memory_utilization,
            max_model_len=self.max_model_len,
            enable_sleep_mode=config.vllm_sleep,
            enable_prefix_caching=True,
            enforce_eager=config.vllm_enforce_eager,
            logprobs_mode="processed_logprobs",
            seed=seed,
        )
        self.stop_token_ids = sorted({t for t in (tokenizer.eos_token_id,) if t is not None})
        check_same_decoding(self.llm.get_tokenizer(), tokenizer, model_path)
        self._pending_model = None
        self._awake_depth = 0
        if self.sleep_enabled:
            self.llm.sleep(level=1)

    # ---------------------------------------------------------------- weights
    def _load(self, model) -> None:
        # Colocated: the policy is on the engine's GPU, so its tensors go GPU to GPU (the loader copies in place).
        self.llm.apply_model(lambda engine_model: push_weights(model, engine_model, dtype=self.dtype))

    def sync_weights(self, model) -> None:
        if self.sleep_enabled and self._awake_depth == 0:
            self._pending_model = model  # applied on waking: the asleep engine's weights live on the CPU
        else:
            self._load(model)
            self.llm.reset_prefix_cache()  # its KV entries were computed with the old weights

    @contextmanager
    def generating(self):
        if self._awake_depth == 0 and self.sleep_enabled:
            self.llm.wake_up(tags=["weights"])  # weights back on the GPU first, so the push lands there
            pushed = self._pending_model is not None
            if pushed:
                self._load(self._pending_model)
                self._pending_model = None
            self.llm.wake_up()  # the KV cache and the rest
            if pushed:
                self.llm.reset_prefix_cache()
        self._awake_depth += 1
        try:
            yield
        finally:
            self._awake_depth -= 1
            if self._awake_depth == 0 and self.sleep_enabled:
                self.llm.sleep(level=1)

    # ---------------------------------------------------------------- generation
    def generate_turn(self, contexts, stop_strings, params, generator=None):
        from vllm.inputs import TokensPrompt

        if isinstance(generator, list):  # rollout.seeding: sample: each request's seed from its own stream
            seeds = [int(torch.randint(0, 2**31 - 1, (1,), generator=g, device=g.device)) for g in generator]
        else:
            device = generator.device if generator is not None else "cpu"
            seeds = torch.randint(0, 2**31 - 1, (len(contexts),), generator=generator, device=device).tolist()
        # A context that has grown to the engine's length limit (a long multi-turn episode) gets no more tokens
        # and ends truncated, as a length cut does, instead of failing the whole batch in vLLM.
        room = [self.max_model_len - len(c) for c in contexts]
        runnable = [i for i, r in enumerate(room) if r > 0]
        sampling = [vllm_sampling_params(replace(params, max_new_tokens=min(params.max_new_tokens, room[i])),
                                         stop_strings, self.stop_token_ids, seeds[i]) for i in runnable]
        results = [TurnOutput([], stopped=False) for _ in contexts]
        if runnable:
            with self.generating():
                outputs = self.llm.generate([TokensPrompt(prompt_token_ids=contexts[i]) for i in runnable], sampling,
                                            use_tqdm=False)
            for i, out in zip(runnable, outputs):
                results[i] = turn_output(out.outputs[0])
        return results
