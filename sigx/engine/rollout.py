"""Rollout backends: sample trajectories (single- or multi-turn) from the current policy.

The backend is an interface so that the GPU backend (vLLM) drops in beside the CPU default (batched,
KV-cached sampling on the transformers model, :mod:`sigx.engine.sampler`). A multi-turn episode runs turn by turn: every active episode
generates until a turn stop string (or EOS), the task's environment replies, its reply is appended as
masked tokens, and the episodes still running continue.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import torch

from sigx.config import RecipeError
from sigx.engine.distributed import current_world, whole_weights
from sigx.engine.sampler import rows_of, sample
from sigx.engine.static_sampler import StaticDecoder
from sigx.engine.trajectory import Trajectory
from sigx.engine.weight_sync import StateDictReceiver, push_weights
from sigx.tasks.base import Problem

#: ``rollout.dtype`` -> torch dtype ("auto", absent here, keeps the checkpoint's / training model's dtype)
ROLLOUT_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class Environment(Protocol):
    """What a rollout reads of a task to run its episodes (a :class:`sigx.tasks.base.Task` is one; so is GC-RL's
    one-turn critique environment): a turn ends on a stop string (or EOS); the environment replies to the
    episodes still running, one call per turn (None ends an episode), each reply capped at
    ``max_observation_tokens`` (None: uncapped); ``answers_every_turn``: the environment is asked after every
    turn, one cut by the token budget or ended by EOS too (Search-R1's rule), rather than such a turn ending the
    episode."""

    max_turns: int
    turn_stop_strings: tuple[str, ...]
    max_observation_tokens: int | None
    answers_every_turn: bool

    def respond_batch(self, problems: list[Problem], turns: list[list[str]]) -> list[str | tuple[str, str] | None]:
        ...


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    greedy: bool = False


@dataclass
class TurnOutput:
    """One generated turn: the ids (stop string or EOS included), whether generation stopped by itself (False
    when cut by ``max_new_tokens``) and, when the backend reports them, the sampler's log-prob of each id."""

    ids: list[int]
    stopped: bool
    logprobs: list[float] | None = None


def prompt_ids(tokenizer, prompt: str, chat_template: bool) -> list[int]:
    """The prompt as token ids; with ``chat_template`` it is wrapped as one user message of the tokenizer's
    chat template with the assistant's turn opened (what an instruct model was tuned on)."""
    if not chat_template:
        return tokenizer(prompt)["input_ids"]
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def use_chat_template(setting: str, tokenizer) -> bool:
    """``rollout.chat_template``: "auto" uses the template when the tokenizer has one."""
    if setting == "auto":
        return bool(getattr(tokenizer, "chat_template", None))
    if setting == "on" and not getattr(tokenizer, "chat_template", None):
        raise RecipeError(["rollout.chat_template: 'on' but the tokenizer has no chat template; use auto or off"])
    return setting == "on"


def sample_streams(count: int, generator: torch.Generator | None) -> list[torch.Generator]:
    """One generator per sample, each seeded by one draw of ``generator`` (torch's global RNG if None):
    ``rollout.seeding: sample``. On the CPU wherever ``generator`` lives: a sample draws one number per token,
    and B CPU draws copied at once cost a GPU less than B kernel launches."""
    device = generator.device if generator is not None else torch.device("cpu")
    seeds = torch.randint(0, 2**62, (count,), generator=generator, device=device).tolist()
    return [torch.Generator().manual_seed(seed) for seed in seeds]


class RolloutBackend(ABC):
    #: whether prompts are wrapped in the tokenizer's chat template (set by the shared engine from the recipe)
    chat_template: bool = False
    #: ``rollout.seeding`` (set by the shared engine from the recipe): "batch", one random stream for the whole
    #: batch; "sample", a stream per sample, so that a sample's tokens do not depend on its batch
    seeding: str = "batch"

    @abstractmethod
    def generate_turn(self, contexts: list[list[int]], stop_strings: tuple[str, ...], params: SamplingParams,
                      generator: torch.Generator | list[torch.Generator] | None = None) -> list[TurnOutput]:
        """For each context, the generated turn; random draws from ``generator`` (torch's global RNG if None; a
        list: one generator per context)."""

    def sync_weights(self, model) -> None:
        """Make the backend sample from ``model``'s current weights (a no-op when it samples from ``model``)."""

    def generating(self):
        """A context held around a whole rollout phase (all turns): a colocated engine wakes up for it once."""
        return nullcontext()

    def rollout(self, task: Environment, problems: list[Problem], groups: list[int], params: SamplingParams,
                tokenizer, generator: torch.Generator | None = None) -> list[Trajectory]:
        """Episodes for ``problems``; every random draw comes from ``generator``, so that each consumer of
        randomness (the responses, a technique's critiques, evaluation) keeps a stream of its own.

        With ``seeding: sample`` each episode draws from a stream of its own (:func:`sample_streams`: one draw of
        ``generator`` per episode, the same on every process), and in a run on N processes each process samples
        its share, whole groups together (:meth:`World.share`), the shares gathered back in order: every
        process returns the trajectories one process would. Collective in such a run: every process calls it
        with the same arguments."""
        with self.generating():
            if self.seeding != "sample":  # every process samples the whole batch; process 0's is used
                return current_world().same(self._rollout(task, problems, groups, params, tokenizer, generator))
            streams = None if params.greedy else sample_streams(len(problems), generator)
            world = current_world()
            mine = world.share(groups)
            own = self._rollout(task, [problems[i] for i in mine], [groups[i] for i in mine], params, tokenizer,
                                None if streams is None else [streams[i] for i in mine])
            return world.gather(mine, own, len(problems))

    def _rollout(self, task, problems, groups, params, tokenizer, generator=None) -> list[Trajectory]:
        encoded: dict[str, list[int]] = {}  # a group's samples share their prompt: tokenize it once
        for p in problems:
            if p.prompt not in encoded:
                encoded[p.prompt] = prompt_ids(tokenizer, p.prompt, self.chat_template)
        trajectories = [Trajectory(problem=p, group=g, prompt_ids=list(encoded[p.prompt]))
                        for p, g in zip(problems, groups)]
        active = list(range(len(trajectories)))
        for turn in range(task.max_turns):
            if not active:
                break
            contexts = [trajectories[i].prompt_ids + trajectories[i].completion_ids for i in active]
            outputs = self.generate_turn(contexts, task.turn_stop_strings, params, rows_of(generator, active))
            waiting = []  # episodes whose turn the environment is asked about
            for i, out in zip(active, outputs):
                traj = trajectories[i]
                text = tokenizer.decode(out.ids, skip_special_tokens=True)
                traj.add(out.ids, by_model=True, turn=turn, text=text, sampling_logprobs=out.logprobs)
                traj.truncated = not out.stopped  # the last turn decides: cut by max_new_tokens
                by_stop_string = out.stopped and not (out.ids and out.ids[-1] == tokenizer.eos_token_id)
                if by_stop_string or task.answers_every_turn:
                    waiting.append(i)
            replies = task.respond_batch([trajectories[i].problem for i in waiting],  # one call per turn
                                         [[s.text for s in trajectories[i].segments if s.by_model] for i in waiting])
            active = []
            for i, reply in zip(waiting, replies):
                if reply is None:
                    continue
                ids, text = observation_ids(tokenizer, reply, task.max_observation_tokens)
                trajectories[i].add(ids, by_model=False, turn=turn, text=text)
                active.append(i)
        return trajectories


def observation_ids(tokenizer, reply: str | tuple[str, str], cap: int | None) -> tuple[list[int], str]:
    """An environment reply as (token ids, text), at most ``cap`` tokens (per turn, as Search-R1's
    ``max_obs_length``). A reply ``(observation, tail)`` is cut in its observation only: the tail (a closing
    tag, an answer tag the environment opens) is never cut, so a long observation still closes. A reply that
    fits is tokenized whole, as Search-R1 tokenizes each observation."""
    observation, tail = reply if isinstance(reply, tuple) else (reply, "")
    ids = tokenizer(observation + tail, add_special_tokens=False)["input_ids"]
    if cap is None or len(ids) <= cap:
        return ids, observation + tail
    tail_ids = tokenizer(tail, add_special_tokens=False)["input_ids"] if tail else []
    kept = tokenizer(observation, add_special_tokens=False)["input_ids"][: max(0, cap - len(tail_ids))]
    return kept + tail_ids, tokenizer.decode(kept, skip_special_tokens=True) + tail


class HFRolloutBackend(RolloutBackend):
    """Batched KV-cached sampling on the training model itself (no weight sync is needed): the dynamic loop of
    :mod:`sigx.engine.sampler` (rows leave as they stop: the CPU default), or with ``decoder="static"`` the
    fixed-shape loop of :mod:`sigx.engine.static_sampler` (a static cache and one decode step, compiled with
    ``compile``, in ``dtype`` under autocast: the GPU path)."""

    def __init__(self, model, tokenizer, decoder: str = "dynamic", compile: bool = False,
                 dtype: torch.dtype | None = None):
        self.model = model
        self.tokenizer = tokenizer
        specials = [tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.unk_token_id]
        self._suppress = sorted({t for t in specials if t is not None and t != tokenizer.eos_token_id})
        self.static = StaticDecoder(model, compile=compile, dtype=dtype) if decoder == "static" else None

    def generating(self):
        """In a run on N processes the training model is sharded: its weights are gathered for the rollout
        phase, so each process's forwards need no collective (:func:`sigx.engine.distributed.whole_weights`)."""
        return whole_weights(self.model)

    def _stop_ids(self, stop_strings: tuple[str, ...]) -> list[int] | None:
        ids = [self.tokenizer(s, add_special_tokens=False)["input_ids"] for s in stop_strings]
        return [i[0] for i in ids] if all(len(i) == 1 for i in ids) else None

    def generate_turn(self, contexts, stop_strings, params, generator=None):
        tok = self.tokenizer
        stop_ids = self._stop_ids(stop_strings)
        was_training = self.model.training
        self.model.eval()
        try:
            decode = self.static.sample if self.static is not None else partial(sample, self.model)
            sampled = decode(contexts, max_new_tokens=params.max_new_tokens, pad_id=tok.pad_token_id,
                             stop_ids=[tok.eos_token_id] + (stop_ids or []), temperature=params.temperature,
                             top_p=params.top_p, greedy=params.greedy, suppress_ids=self._suppress,
                             stop_strings=tuple(stop_strings) if stop_ids is None else (), decode=tok.decode,
                             generator=generator)
        finally:
            self.model.train(was_training)
        return [TurnOutput(s.ids, s.stopped, s.logprobs) for s in sampled]


def cast_weights(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """``model.to(dtype)`` for the weights only: the buffers a model computes itself rather than loads (not in
    its state dict: the rotary embedding's ``inv_freq``) keep their dtype, as they do in a model that
    transformers loads in ``dtype``. Rounded to bf16, an ``inv_freq`` entry theta is off by up to 2^-8
    relative, so the rotary angle p * theta at position p is off by up to p * theta * 2^-8 rad (0.35 rad at
    p = 300 for theta = 0.3): the sampler's log-probs would drift from the trainer's as sequences grow."""
    saved = set(model.state_dict())
    computed = {name: buffer for name, buffer in model.named_buffers() if name not in saved}
    model.to(dtype)
    for name, buffer in computed.items():
        owner, _, leaf = name.rpartition(".")
        model.get_submodule(owner).register_buffer(leaf, buffer, persistent=False)


class SyncedHFRolloutBackend(HFRolloutBackend):
    """Transformers generation on a *separate copy* of the policy, kept current by the in-place weight push.

    This is vLLM's situation (an engine that owns its own weights) with every other variable removed, so a CPU
    test can check the push path of :mod:`sigx.engine.weight_sync`: after any update this backend must
    sample exactly what ``hf`` would. Also usable to roll out in another dtype than training
    (``rollout.backend: hf_synced``, weights cast on push).
    """

    def __init__(self, model, tokenizer, dtype: torch.dtype | None = None, decoder: str = "dynamic",
                 compile: bool = False):
        rollout_model = copy.deepcopy(model).eval().requires_grad_(False)
        if dtype is not None:
            cast_weights(rollout_model, dtype)
        super().__init__(rollout_model, tokenizer, decoder=decoder, compile=compile)
        self.receiver = StateDictReceiver(rollout_model)
        self.dtype = dtype

    def sync_weights(self, model) -> None:
        push_weights(model, self.receiver, dtype=self.dtype)
