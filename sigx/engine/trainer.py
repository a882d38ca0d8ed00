"""The GRPO loop: rollout -> reward -> advantage -> policy loss -> optimizer step, with technique hooks.

Kept deliberately plain (nanoGPT-style): one method per stage, all in this file, so that a reader sees the
whole algorithm at once; the pure helpers live beside it (:mod:`sigx.engine.batching`: how the batch is laid out
for the update; :mod:`sigx.engine.metrics`: what a step and a run report). Techniques enter only through
:mod:`sigx.engine.hooks`.

Off-policy-ness is real: the behaviour log-probs are computed once per rollout batch, before any update, and
the batch is consumed in ``mini_batches`` optimizer steps for ``inner_epochs`` passes; every mini-batch after
the first sees a policy that has already moved, so its importance ratios differ from 1.
"""

from __future__ import annotations

import math
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import torch

from sigx.config import Recipe, RecipeError
from sigx.engine.advantages import advantage_estimator
from sigx.engine.batching import loss_share, micro_batches, place
from sigx.engine.behaviour import BehaviourPolicy
from sigx.engine.distributed import current_world, load_shards, save_shards, shard
from sigx.engine.hooks import Technique, resolve_policy_loss, stream_seed
from sigx.engine.lora import AdaptersOff, adapter_state, add_adapters
from sigx.engine.losses import PolicyLossInputs, aggregate_loss, kl_k3, masked_mean, rollout_correction
from sigx.engine.metrics import (ENGINE_ROOM, logprob_gap, own_rows, per_set_metrics, room_values, step_metrics,
                                 summarize)
from sigx.engine.rollout import SamplingParams
from sigx.engine.shared import SharedEngine
from sigx.engine.trajectory import RolloutBatch, Trajectory, collate, token_logprobs

if TYPE_CHECKING:
    from sigx.checkpoint import Checkpoints

#: one line, said before the processes start (sigx train) and here (a trainer built in a process group otherwise)
VLLM_WITH_NPROC = ("--nproc: rollout.backend vllm does not run in a multi-process run yet (a vLLM engine beside "
                   "FSDP2 is not built); use hf or hf_synced")

EVAL_SEED = 20260224  # every run evaluates with the same sampling noise, whatever its training seed


class NonFiniteLossError(RuntimeError):
    pass


@dataclass
class StepResult:
    metrics: dict
    trajectories: list[Trajectory] = field(repr=False, default_factory=list)


class GRPOTrainer:
    """One run of the GRPO loop on a shared engine. ``techniques`` are the recipe's enabled techniques, built by
    the caller (:func:`sigx.techniques.build`): the engine never imports a technique."""

    def __init__(self, recipe: Recipe, engine: SharedEngine, techniques: Sequence[Technique] = ()):
        enabled = recipe.techniques.enabled_names()
        if sorted(t.name for t in techniques) != sorted(enabled):
            raise ValueError(f"the recipe enables techniques {enabled or 'none'} but the trainer was given "
                             f"{[t.name for t in techniques] or 'none'}; build them with sigx.techniques.build")
        self.recipe = recipe
        self.engine = engine
        self.task = engine.task
        self.tokenizer = engine.tokenizer
        engine.check_compatible(recipe)
        engine.reset_policy()
        self.model = engine.model
        t = recipe.training
        # LoRA: adapters on the engine's model for this run (the next run's reset takes them off); only they train
        self.lora = t.lora.r > 0
        self.world = current_world()  # --nproc N: the update sharded over N processes (sigx/engine/distributed.py)
        if self.world.sharded and recipe.rollout.backend == "vllm":
            raise RecipeError([VLLM_WITH_NPROC])
        self.trainable = (add_adapters(self.model, t.lora, stream_seed(recipe.seed, "lora")) if self.lora
                          else list(self.model.parameters()))
        # the KL reference: the base policy (with LoRA, the same model with its adapters off: no second copy);
        # built before sharding, so that it is a whole model of its own
        self.reference = (AdaptersOff(self.model) if self.lora else engine.reference_model()) if t.kl_beta > 0 else None
        if self.world.sharded:
            shard(self.model)
            self.trainable = [p for p in self.model.parameters() if p.requires_grad]  # sharded now (DTensors)
        torch.manual_seed(recipe.seed)
        # One random stream per consumer (common random numbers): the prompts, the rollout's token draws and
        # the mini-batch order each have their own, as each technique has, so that a cell with a technique on
        # sees the same prompts and the same rollout noise as the cell with it off (same seed).
        self.rng = random.Random(recipe.seed)  # the training prompts
        self.sampler = torch.Generator(device=engine.device).manual_seed(stream_seed(recipe.seed, "rollout"))
        self.shuffler = torch.Generator().manual_seed(stream_seed(recipe.seed, "minibatches"))
        self.behaviour = BehaviourPolicy(self.model, recipe.rollout.staleness,
                                         set(adapter_state(self.model)) if self.lora else None)
        self.techniques = list(techniques)
        self.policy_loss = resolve_policy_loss(self.techniques, t)  # the loss in force, its settings bound
        self.aggregation = self.policy_loss.aggregation(t)  # the loss's own (SSPO: seq-mean), else the recipe's
        self.token_budget = recipe.rollout.max_new_tokens * self.task.max_turns  # token-sum-norm's constant
        self.estimate_advantages = advantage_estimator(t.advantage)
        # on a GPU the fused kernel (one launch per step, as transformers' default adamw_torch_fused); on a CPU
        # the default implementation, whose results the CPU tests and measured tables were made with
        self.optimizer = torch.optim.AdamW(self.trainable, lr=t.lr, weight_decay=t.weight_decay,
                                           betas=(0.9, 0.99), fused=True if self.model.device.type == "cuda" else None)
        # Rows with advantage 0 may be left out of the update when their gradient is exactly zero: the policy
        # loss is proportional to the advantage and there is no KL term.
        self.skips_zero_advantage = (t.skip_zero_advantage and self.reference is None
                                     and self.policy_loss.spec.zero_at_zero_advantage)
        r = recipe.rollout
        self.sampling = SamplingParams(r.max_new_tokens, r.temperature, r.top_p)

    # ------------------------------------------------------------------------------------------ rollout
    def rollout(self) -> list[Trajectory]:
        r, t = self.recipe.rollout, self.recipe.training
        problems = [self.task.train_problem(self.rng) for _ in range(t.prompts_per_step)]
        expanded = [p for p in problems for _ in range(r.group_size)]
        groups = [g for g in range(len(problems)) for _ in range(r.group_size)]
        self.model.eval()
        # Sampled by the behaviour policy (the trained weights, or with rollout.staleness older ones); one
        # wake-up of a sleeping engine for responses and critiques.
        with self.behaviour.in_force(self.model, self.engine.rollout.sync_weights), self.engine.rollout.generating():
            trajectories = self.engine.rollout.rollout(self.task, expanded, groups, self.sampling, self.tokenizer,
                                                       self.sampler)
            self.score(trajectories)
            next_group = len(problems)
            for tech in self.techniques:
                extra = tech.expand_rollouts(trajectories, next_group)
                next_group = max([next_group] + [x.group + 1 for x in extra])
                trajectories += extra
        return trajectories

    def score(self, trajectories: list[Trajectory]) -> None:
        for traj in trajectories:
            s = self.task.score(traj.problem, traj.segments)
            traj.reward = traj.outcome_reward = s.reward
            traj.correct = s.correct
            traj.info["metrics"] = s.metrics

    # ------------------------------------------------------------------------------------------ advantage
    def advantages(self, trajectories: list[Trajectory]) -> torch.Tensor:
        for tech in self.techniques:
            tech.shape_rewards(trajectories)
        rewards = torch.tensor([t.reward for t in trajectories], dtype=torch.float32)
        groups = torch.tensor([t.group for t in trajectories])
        adv = self.estimate_advantages(rewards, groups)
        for tech in self.techniques:
            adv = tech.adjust_advantages(trajectories, adv)
        return adv

    # ------------------------------------------------------------------------------------------ update
    def _micro_batches(self, batch: RolloutBatch, rows: torch.Tensor | None = None):
        t = self.recipe.training
        return micro_batches(batch, rows, t.micro_batch_size, t.micro_batch_tokens)

    @torch.no_grad()
    def _logprobs(self, model, batch: RolloutBatch, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Log-probs [B, T-1] of ``rows`` (default: all) under ``model``; NaN on rows not computed."""
        out = torch.full(batch.loss_mask.shape, float("nan"))
        for index, micro in self._micro_batches(batch, rows):
            with self._autocast():
                logp = token_logprobs(model, micro.input_ids.to(model.device), micro.attention_mask.to(model.device),
                                      self.recipe.rollout.temperature)
            place(out, index, logp.cpu())
        return out

    def _autocast(self):
        dtype = self.recipe.training.autocast
        if dtype == "off" or self.model.device.type != "cuda":
            return nullcontext()
        return torch.autocast("cuda", dtype=getattr(torch, dtype))

    def _micro_step(self, micro: RolloutBatch, share: float, n_updates: int) -> tuple[torch.Tensor, dict]:
        """Forward, loss and backward of one micro-batch, its loss scaled by its ``share`` of the mini-batch's
        normaliser; gradients accumulate until the optimizer step. A micro-batch without ``old_logprobs`` is
        on-policy (nothing has been updated yet): this forward's own log-probs, detached, are its behaviour
        log-probs. Returns the behaviour log-probs used and the loss diagnostics."""
        t = self.recipe.training
        micro = micro.to(self.model.device)
        with self._autocast():
            logp, entropy = token_logprobs(self.model, micro.input_ids, micro.attention_mask,
                                           self.recipe.rollout.temperature, with_entropy=True)
        old = logp.detach() if micro.old_logprobs is None else micro.old_logprobs
        drift = masked_mean((logp.detach() - old).abs(), micro.loss_mask)  # |log ratio|: how off-policy
        per_token, diag = self.policy_loss(PolicyLossInputs(logp, old, micro.advantages, micro.loss_mask,
                                                            micro.turn_ids))
        if t.rollout_correction != "off" and micro.sampling_logprobs is not None:  # the sampler is not the trainer
            weights, corrected = rollout_correction(old, micro.sampling_logprobs, micro.loss_mask, t.rollout_correction,
                                                    t.rollout_correction_min, t.rollout_correction_max)
            per_token = per_token * weights
            diag.update(corrected)
        if self.reference is not None:
            kl = kl_k3(logp, micro.ref_logprobs)
            per_token = per_token + t.kl_beta * kl
            diag["kl"] = masked_mean(kl.detach(), micro.loss_mask)
        loss = aggregate_loss(per_token, micro.loss_mask, self.aggregation, self.token_budget)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"non-finite loss ({loss.item()}) at update {n_updates}")
        (loss * share).backward()
        diag.update(loss=loss.detach(), entropy=masked_mean(entropy.detach(), micro.loss_mask), log_ratio_abs=drift)
        return old, {k: float(v) for k, v in diag.items()}

    def _mini_step(self, batch: RolloutBatch, index: torch.Tensor, trainable: torch.Tensor, n_updates: int,
                   behaviour_given: bool) -> dict:
        """One optimizer step on the mini-batch ``index``: gradients accumulated over its trainable rows'
        micro-batches. Diagnostics are averaged over the micro-batches by generated tokens, so they read as the
        trained rows' whole; the loss is the mini-batch's (rows left out add exactly 0 to it)."""
        t = self.recipe.training
        mini = batch.select(index)
        on_policy = n_updates == 0 and not behaviour_given  # nothing updated yet: this forward is the behaviour pass
        rows = index[trainable[index]]
        self.optimizer.zero_grad(set_to_none=True)
        weighted, tokens, loss = {}, 0.0, 0.0
        parts = list(self._micro_batches(batch, self.world.own(rows)))  # with --nproc N, this process's rows
        for _ in range(self.world.most(len(parts)) - len(parts)):  # as many forward/backward passes as the others:
            idle = batch.select(index[:1])  # FSDP's collectives must stay in step (a zero-weighted pass)
            idle.old_logprobs = None
            self._micro_step(idle, 0.0, n_updates)
        for micro_rows, micro in parts:
            if on_policy:
                micro.old_logprobs = None
            share = loss_share(micro, mini, self.aggregation)  # of the global mini-batch: every process holds it
            used, diag = self._micro_step(micro, share * self.world.size, n_updates)  # FSDP averages over processes
            if on_policy:
                place(batch.old_logprobs, micro_rows, used.cpu())
            loss += share * diag.pop("loss")
            weight = float(micro.loss_mask.sum())  # diagnostics are token means: weigh micro-batches by tokens
            tokens += weight
            for k, v in diag.items():
                weighted[k] = weighted.get(k, 0.0) + weight * v
        if not len(rows):  # nothing to train: a step on zero gradients, as the full batch's would be (AdamW's
            for p in self.trainable:  # moments and weight decay still move)
                if p.requires_grad:
                    p.grad = torch.zeros_like(p)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable, t.max_grad_norm)
        self.optimizer.step()
        if self.world.sharded:  # the diagnostics of every process's rows
            summed = self.world.total({**{f"w/{k}": v for k, v in weighted.items()}, "tokens": tokens, "loss": loss})
            weighted = {k[2:]: v for k, v in summed.items() if k.startswith("w/")}
            tokens, loss = summed["tokens"], summed["loss"]
            grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        out = {k: v / tokens for k, v in weighted.items()} if tokens > 0 else {}
        return {**out, "loss": loss, "grad_norm": float(grad_norm)}

    def update(self, batch: RolloutBatch) -> dict:
        """``inner_epochs`` passes over the batch in ``mini_batches`` optimizer steps.

        The behaviour log-probs are the pre-update policy's. The first mini-batch runs before any step, so its
        training forward *is* the behaviour pass (its ratios are exactly 1, as on-policy ratios should be); only
        the other rows need a separate no-grad pass, made before the first step. This saves one forward over
        a mini-batch per rollout (verl takes the same shortcut when a batch is consumed on-policy). Rows with a
        zero advantage get neither pass when their gradient is exactly zero (``skips_zero_advantage``)."""
        t = self.recipe.training
        self.model.train()  # dropout is disabled at load (the ratio compares one function); train mode keeps
        # gradient checkpointing on, which transformers applies only in train mode
        epochs = [torch.chunk(torch.randperm(len(batch), generator=self.shuffler), t.mini_batches)
                  for _ in range(t.inner_epochs)]
        # rows whose gradient is exactly zero get no pass: advantage 0 under a per-row loss, or no loss token left
        # (mask_truncated); every row stays in the loss normaliser
        trainable = ((batch.advantages != 0) & (batch.loss_mask.sum(-1) > 0)) if self.skips_zero_advantage \
            else torch.ones(len(batch), dtype=torch.bool)
        stale = self.behaviour.staleness > 0
        if stale:  # the behaviour log-probs are the (older) sampling weights', for every trained row
            with self.behaviour.in_force(self.model):
                batch.old_logprobs = self._logprobs(self.model, batch, trainable.nonzero().squeeze(-1))
        else:
            batch.old_logprobs = torch.full_like(batch.loss_mask, float("nan"))  # the first mini-batch fills its rows
            if len(epochs[0]) > 1:
                rest = torch.cat(epochs[0][1:])
                batch.old_logprobs = self._logprobs(self.model, batch, rest[trainable[rest]])
        if self.reference is not None:
            batch.ref_logprobs = self._logprobs(self.reference, batch)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        n_updates = 0
        for mini_batches in epochs:
            for index in mini_batches:
                for k, v in self._mini_step(batch, index, trainable, n_updates, stale).items():
                    sums[k] = sums.get(k, 0.0) + v
                    counts[k] = counts.get(k, 0) + 1
                n_updates += 1
        # The rollout engine samples the next batch from the weights just trained: push them (in place); with
        # staleness they join the window of past weights instead, and an older snapshot is pushed before sampling.
        self.behaviour.record(self.model)
        self.engine.rollout.sync_weights(self.model)
        out = {k: v / counts[k] for k, v in sums.items()}
        out["trained_fraction"] = float(trainable.float().mean())
        gap = logprob_gap(batch)  # the behaviour log-probs are the pre-update ones: the weights the engine sampled
        if not math.isnan(gap):
            out["rollout/logprob_gap"] = gap
        return out

    # ------------------------------------------------------------------------------------------ one step
    def step(self) -> StepResult:
        t0 = time.perf_counter()
        trajectories = self.rollout()
        t1 = time.perf_counter()
        advantages = self.advantages(trajectories)
        batch = collate(trajectories, advantages, self.tokenizer.pad_token_id, self.recipe.training.mask_truncated)
        update_metrics = self.update(batch)
        t2 = time.perf_counter()
        metrics = step_metrics(trajectories, advantages, update_metrics, t1 - t0, t2 - t1,
                               self.recipe.training.inner_epochs)
        for tech in self.techniques:
            metrics.update({f"{tech.name}/{k}": v for k, v in tech.metrics(trajectories).items()})
        return StepResult(metrics, trajectories)

    # ------------------------------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self) -> dict:
        """Mean reward on the held-out prompts: sampled (``eval_samples`` per prompt, at the rollout
        temperature, with fixed noise) and greedy."""
        problems = self.task.eval_problems()
        n = self.recipe.training.eval_samples
        self.model.eval()
        greedy_params = SamplingParams(self.sampling.max_new_tokens, greedy=True)
        noise = torch.Generator(device=self.engine.device).manual_seed(EVAL_SEED)  # the same draws every time
        with self.engine.rollout.generating():
            sampled = self.engine.rollout.rollout(self.task, [p for p in problems for _ in range(n)],
                                                  [g for g in range(len(problems)) for _ in range(n)], self.sampling,
                                                  self.tokenizer, noise)
            greedy = self.engine.rollout.rollout(self.task, problems, list(range(len(problems))), greedy_params,
                                                 self.tokenizer)
        self.score(sampled)
        self.score(greedy)
        out = {
            "eval/reward": sum(x.outcome_reward for x in sampled) / len(sampled),
            "eval/greedy_reward": sum(x.outcome_reward for x in greedy) / len(greedy),
        }
        return out | per_set_metrics(sampled, greedy)

    # ------------------------------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Everything the next step depends on besides the recipe (see :mod:`sigx.checkpoint`)."""
        weights = {} if self.world.sharded else {  # a sharded run's weights and optimizer: save_shards
            "model": adapter_state(self.model) if self.lora else self.model.state_dict(),  # LoRA: the adapters
            "optimizer": self.optimizer.state_dict()}
        return {
            **weights,
            "problem_rng": self.rng.getstate(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "sampler": self.sampler.get_state(),
            "shuffler": self.shuffler.get_state(),
            # a sharded run's snapshots are sharded like its weights: saved with them (save_shards); counted here
            "behaviour": ({"count": len(self.behaviour.snapshots)} if self.world.sharded
                          else self.behaviour.state_dict()),
            "techniques": {tech.name: tech.state_dict() for tech in self.techniques},
        }

    def load_state_dict(self, state: dict, from_shards: bool = False) -> None:
        """``from_shards``: the weights and optimizer state were loaded from the checkpoint's shards."""
        if from_shards:
            pass
        elif self.world.sharded:
            raise ValueError("a checkpoint of a 1-process run resumes in 1 process (--nproc 1) for now")
        elif self.lora:  # the adapters only: the frozen base is the engine's
            expected = set(adapter_state(self.model))
            if set(state["model"]) != expected:
                raise ValueError("the checkpoint's adapters are not this run's (training.lora differs)")
            self.model.load_state_dict(state["model"], strict=False)
        else:
            self.model.load_state_dict(state["model"])
        if not from_shards:
            self.optimizer.load_state_dict(state["optimizer"])
        self.rng.setstate(state["problem_rng"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.sampler.set_state(state["sampler"])
        self.shuffler.set_state(state["shuffler"])
        if not from_shards:  # else loaded with the weights (_load_shards)
            self.behaviour.load_state_dict(state["behaviour"])
        for tech in self.techniques:
            tech.load_state_dict(state["techniques"].get(tech.name, {}))
        self.engine.rollout.sync_weights(self.model)  # the rollout engine samples the restored weights

    @staticmethod
    def _sharded_snapshots(snapshots: list) -> dict | None:
        """The staleness window's snapshots as torch.distributed.checkpoint keys them beside the weights."""
        return {"behaviour": {str(i): s for i, s in enumerate(snapshots)}} if snapshots else None

    def _save_shards(self, directory) -> None:
        save_shards(self.model, self.optimizer, directory, self._sharded_snapshots(list(self.behaviour.snapshots)))

    def _load_shards(self, directory, trainer_state: dict) -> None:
        """A multi-process run's weights, optimizer state and staleness snapshots, resharded for this run."""
        blanks = self.behaviour.blank_snapshots(self.model, trainer_state["behaviour"].get("count", 0))
        load_shards(self.model, self.optimizer, directory, self._sharded_snapshots(blanks))
        self.behaviour.load_state_dict({"snapshots": blanks})

    # ------------------------------------------------------------------------------------------ the run
    def train(self, on_step: Callable[[int, dict], None] | None = None, checkpoints: Checkpoints | None = None,
              resume: dict | None = None) -> dict:
        """Evaluate, then ``steps`` GRPO steps with a held-out evaluation every ``eval_every``. With
        ``checkpoints`` (a :class:`sigx.checkpoint.Checkpoints`) the state is saved on its schedule; with
        ``resume`` (a loaded checkpoint) the run continues from it: history, clock and all."""
        t = self.recipe.training
        start = time.perf_counter()
        if resume is not None:
            try:
                if resume.get("shards"):  # a multi-process run's weights and optimizer, resharded for this run
                    self._load_shards(checkpoints.path.parent / resume["shards"], resume["trainer"])
                self.load_state_dict(resume["trainer"], from_shards=bool(resume.get("shards")))
            except (KeyError, TypeError, ValueError, RuntimeError, OSError) as err:  # an older or foreign state
                where = checkpoints.path if checkpoints is not None else "checkpoint"
                raise RecipeError([f"{where}: its trainer state does not fit this run ({type(err).__name__}: "
                                   f"{str(err).splitlines()[0][:100] if str(err) else ''}); start afresh with "
                                   "--fresh"]) from None
            history, first_step, spent = list(resume["history"]), resume["step"] + 1, resume["elapsed_s"]
        else:
            row = {"step": 0, **self.evaluate()}
            history, first_step, spent = [row], 1, 0.0
            if on_step:
                on_step(0, row)
        for step in range(first_step, t.steps + 1):
            result = self.step()
            row = {"step": step, **result.metrics}
            if step % t.eval_every == 0 or step == t.steps:
                row.update(self.evaluate())
            row["elapsed_s"] = spent + time.perf_counter() - start
            history.append(row)
            if on_step:
                on_step(step, row)
            if checkpoints is not None and checkpoints.due(step, t.steps):
                checkpoints.save(step, self.state_dict(), history, row["elapsed_s"],
                                 shards=self._save_shards if self.world.sharded else None)
        summary = summarize(history, spent + time.perf_counter() - start)
        room = room_values(history, ENGINE_ROOM)
        for tech in self.techniques:
            rows = own_rows(history, tech.name)
            summary.update(tech.summary(rows))
            room |= room_values(rows, tech.room)
        summary["room"] = room
        return summary
