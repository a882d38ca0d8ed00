"""Rollout backends: sample trajectories (single- or multi-turn) from the current policy.

The backend is an interface so that the GPU backend (vLLM) drops in beside the CPU default (transformers
``generate`` with its KV cache, batched). A multi-turn episode runs turn by turn: every active episode
generates until a turn stop string (or EOS), the task's environment replies, its reply is appended as
masked tokens, and the episodes still running continue.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from sigx.config import RecipeError
from sigx.engine.trajectory import Trajectory
from sigx.tasks.base import Problem, Task


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    greedy: bool = False


class RolloutBackend(ABC):
    @abstractmethod
    def generate_turn(self, contexts: list[list[int]], stop_strings: tuple[str, ...],
                      params: SamplingParams) -> list[tuple[list[int], bool]]:
        """For each context, the generated ids (stop string or EOS included) and whether generation stopped
        by itself (False when cut by ``max_new_tokens``)."""

    def sync_weights(self, model) -> None:
        """Make the backend sample from ``model``'s current weights (a no-op when it samples from ``model``)."""

    def rollout(self, task: Task, problems: list[Problem], groups: list[int], params: SamplingParams,
                tokenizer) -> list[Trajectory]:
        trajectories = [
            Trajectory(problem=p, group=g, prompt_ids=tokenizer(p.prompt)["input_ids"]) for p, g in zip(problems, groups)
        ]
        active = list(range(len(trajectories)))
        for turn in range(task.max_turns):
            if not active:
                break
            contexts = [trajectories[i].prompt_ids + trajectories[i].completion_ids for i in active]
            outputs = self.generate_turn(contexts, task.turn_stop_strings, params)
            still_active = []
            for i, (ids, stopped) in zip(active, outputs):
                traj = trajectories[i]
                text = tokenizer.decode(ids, skip_special_tokens=True)
                traj.add(ids, by_model=True, turn=turn, text=text)
                if not stopped:
                    traj.truncated = True
                    continue
                if ids and ids[-1] == tokenizer.eos_token_id:
                    continue
                reply = task.respond(traj.problem, [s.text for s in traj.segments if s.by_model])
                if reply is None:
                    continue
                traj.add(tokenizer(reply, add_special_tokens=False)["input_ids"], by_model=False, turn=turn, text=reply)
                still_active.append(i)
            active = still_active
        return trajectories


class HFRolloutBackend(RolloutBackend):
    """Batched ``model.generate`` on the training model itself: no weight sync is needed."""

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        specials = [tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.unk_token_id]
        self._suppress = sorted({t for t in specials if t is not None and t != tokenizer.eos_token_id})

    def _stop_ids(self, stop_strings: tuple[str, ...]) -> list[int] | None:
        ids = [self.tokenizer(s, add_special_tokens=False)["input_ids"] for s in stop_strings]
        return [i[0] for i in ids] if all(len(i) == 1 for i in ids) else None

    @torch.no_grad()
    def generate_turn(self, contexts, stop_strings, params):
        tok = self.tokenizer
        width = max(len(c) for c in contexts)
        device = self.model.device
        input_ids = torch.tensor([[tok.pad_token_id] * (width - len(c)) + c for c in contexts], device=device)
        attention = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in contexts], device=device)
        stop_ids = self._stop_ids(stop_strings)
        eos = [tok.eos_token_id] + (stop_ids or [])
        kwargs = dict(max_new_tokens=params.max_new_tokens, eos_token_id=eos, pad_token_id=tok.pad_token_id,
                      suppress_tokens=self._suppress or None)
        if stop_strings and stop_ids is None:
            kwargs.update(stop_strings=list(stop_strings), tokenizer=tok)
        if params.greedy:
            kwargs.update(do_sample=False)
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
        was_training = self.model.training
        self.model.eval()
        out = self.model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)[:, width:].tolist()
        self.model.train(was_training)
        results = []
        for row in out:
            ids, stopped = [], False
            for t in row:
                if t in eos:  # checked first: some hub tokenizers pad with EOS
                    ids.append(t)
                    stopped = True
                    break
                if t == tok.pad_token_id:
                    break
                ids.append(t)
            if not stopped and stop_strings and stop_ids is None:
                stopped = any(tok.decode(ids).endswith(s) for s in stop_strings)
            results.append((ids, stopped))
        return results


def build_rollout_backend(name: str, model, tokenizer, rollout_config) -> RolloutBackend:
    if name == "hf":
        return HFRolloutBackend(model, tokenizer)
    if name == "vllm":
        raise RecipeError(["rollout.backend: 'vllm' is not available in this version yet; allowed: hf"])
    raise RecipeError([f"rollout.backend: unknown backend {name!r}; allowed: hf, vllm"])
