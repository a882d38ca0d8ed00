"""``sigx/tiny``: a small Qwen2-architecture causal LM that sigx builds and warm-starts itself.

Why: a CPU machine with no hub access still needs a model that can really learn in minutes. The model is a
transformers ``Qwen2ForCausalLM`` built from a config (so every code path is the one a hub model takes),
trained briefly with SFT on task demonstrations of which a fraction carry a wrong step. The result is cached
on disk keyed by everything that determines it, and reused by every run that shares it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from sigx.config import RecipeError, TinyModelConfig, field_names_with_role
from sigx.host import available_memory
from sigx.models.tokenizer import ALPHABET, build_char_tokenizer
from sigx.tasks.base import Segment, Task

FORMAT_VERSION = 8  # 2: weight init seeded; 3: critique examples in the SFT mix; 4-6: verifying critiques;
#                    7: verifying critiques of search episodes; 8: the saved tokenizer splits runs of newlines
#                    (the weights are 7's: no SFT text has two newlines in a row)
VERIFY_FORMAT = 2  # verifying critiques of search episodes: 2: each pair marked + / -, the answer checked too


def cache_root() -> Path:
    return Path(os.environ.get("SIGX_CACHE", Path.home() / ".cache" / "sigx"))


def tiny_cache_key(config: TinyModelConfig, task_config) -> str:
    """Everything the warm start depends on, and nothing else: the model's shape and SFT settings and the task
    fields the demonstrations come from. Fields that only shape evaluation (``eval_prompts``, the held-out set's
    seed: the task fields of role ``held_out``) are left out, so changing them reuses the built model."""
    task = {k: v for k, v in task_config.model_dump().items()
            if k not in field_names_with_role(type(task_config), "held_out")}
    tiny = config.model_dump()
    # Fields added later leave out of the key the settings every earlier warm start had, so those keep their keys:
    # no critique phase, and (with one, or without: no batches to share) the phase's first share, one half.
    if not config.sft_critique_steps or config.sft_critique_phase_share == 0.5:
        del tiny["sft_critique_phase_share"]
    if not config.sft_critique_steps:
        del tiny["sft_critique_steps"]
    parts = {"v": FORMAT_VERSION, "alphabet": ALPHABET, "tiny": tiny, "task": task}
    # Only the warm starts whose critiques VERIFY_FORMAT changed get a new key: verifying critiques of multi-turn
    # episodes (a single-turn task's verifying critique re-derives the answer, as before it).
    if (config.sft_critique_fraction or config.sft_critique_steps) and config.sft_critique_style == "verify" \
            and getattr(task_config, "max_turns", 1) > 1:
        parts["verify_format"] = VERIFY_FORMAT
    blob = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def warm_start_weights(path: str | Path) -> str | None:
    """The digest of a built warm start's weights (sha256 of its weights file, 16 hex digits), or None where
    ``path`` is not a sigx/tiny build.

    Why: the cache key names what a warm start is built *from*, not what the build produced, and the build's
    floating point depends on the machine (a CPU with AVX-512 and one with AVX2 only run different kernels). The
    same recipe rebuilt on another machine can give other weights under the same key: a store whose runs are
    continued there would mix two base models under one name. The digest tells them apart. (Named and local
    models are the user's own files, not rebuilt per machine: their name is their identity.)"""
    weights = Path(path) / "model.safetensors"
    if not (Path(path) / "sigx_tiny.json").is_file() or not weights.is_file():
        return None
    digest = hashlib.sha256()
    with open(weights, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def build_tiny_model(config: TinyModelConfig, tokenizer) -> Qwen2ForCausalLM:
    return Qwen2ForCausalLM(tiny_model_config(config, tokenizer))


def tiny_model_config(config: TinyModelConfig, tokenizer) -> Qwen2Config:
    """The transformers config of ``sigx/tiny`` with this shape (the memory plan reads its shape from it too)."""
    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        max_position_embeddings=512,
        tie_word_embeddings=config.tie_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def encode_demonstration(tokenizer, task: Task, prompt: str, segments: list[Segment]) -> tuple[list[int], list[int]]:
    """Token ids and SFT labels of one demonstration: prompt and environment text get label -100."""
    return encode_demonstrations(tokenizer, task, [(prompt, segments)])[0]


def encode_demonstrations(tokenizer, task: Task,
                          examples: list[tuple[str, list[Segment]]]) -> list[tuple[list[int], list[int]]]:
    """``encode_demonstration`` of each example, every string still encoded on its own (the ids are those of
    one call per string) but in two batched calls: one call per string was a tenth of the warm start's time."""
    prompts = tokenizer([prompt for prompt, _ in examples])["input_ids"] if examples else []
    texts = [seg.text for _, segments in examples for seg in segments]
    pieces = iter(tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else [])
    encoded = []
    for (_, segments), prompt_ids in zip(examples, prompts):
        ids = list(prompt_ids)
        labels = [-100] * len(ids)
        for seg in segments:
            seg_ids = list(next(pieces))
            ids += seg_ids
            labels += seg_ids if seg.by_model else [-100] * len(seg_ids)
        if not any(segments[-1].text.endswith(s) for s in task.turn_stop_strings):
            ids.append(tokenizer.eos_token_id)
            labels.append(tokenizer.eos_token_id)
        encoded.append((ids, labels))
    return encoded


def critique_example(task: Task, rng: random.Random, config: TinyModelConfig) -> tuple[str, list[Segment]]:
    """A critique SFT example: a demonstration (correct or not, half and half) and its verdict, flipped with
    probability ``sft_critique_noise`` so that the base critic is useful but imperfect (room for GC-RL)."""
    problem = task.train_problem(rng)
    transcript = task.demonstration(problem, rng, 0.5)
    correct = task.score(problem, transcript).correct
    if rng.random() < config.sft_critique_noise:
        correct = not correct
    return task.critique_prompt(problem, transcript), task.critique_demonstration(
        problem, transcript, correct, verify=config.sft_critique_style == "verify")


def sft_batch(tokenizer, task: Task, rng: random.Random, config: TinyModelConfig,
              critique_share: float) -> dict[str, torch.Tensor]:
    """One SFT batch (input ids, attention mask, labels): ``sft_batch_size`` examples, each a critique example
    with probability ``critique_share``, else a task demonstration with ``sft_noise``."""
    drawn = []
    for _ in range(config.sft_batch_size):
        if rng.random() < critique_share:
            drawn.append(critique_example(task, rng, config))
        else:
            problem = task.train_problem(rng)
            drawn.append((problem.prompt, task.demonstration(problem, rng, config.sft_noise)))
    examples = encode_demonstrations(tokenizer, task, drawn)
    width = max(len(ids) for ids, _ in examples)
    lengths = torch.tensor([len(ids) for ids, _ in examples])
    return {"input_ids": torch.tensor([ids + [tokenizer.pad_token_id] * (width - len(ids)) for ids, _ in examples]),
            "attention_mask": (torch.arange(width)[None, :] < lengths[:, None]).long(),
            "labels": torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in examples])}


def sft_warm_start(model, tokenizer, task: Task, config: TinyModelConfig, log=print) -> list[float]:
    """Short supervised warm start on noisy demonstrations (and critique examples); returns the loss curve. With
    ``sft_critique_steps``, a second phase follows whose batches are ``sft_critique_phase_share`` critiques (the
    rest task demonstrations), so that a critic is learned on top of a policy already trained rather than in
    competition with it from the first step. On the search task a phase of 300 steps, 90% verifying critiques on
    clean verdicts, gave a critic at balanced accuracy 0.83 and a policy that learns faster than without it
    (docs/benchmarks.md, GC-RL pilots 5-6; the earlier finding that critiques cost the policy was measured with
    the tokenizer bug and is void)."""
    rng = random.Random(config.sft_seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.sft_lr, weight_decay=0.01)
    model.train()
    losses: list[float] = []
    phases = [("sft", config.sft_steps, config.sft_critique_fraction)]
    if config.sft_critique_steps:
        phases.append(("critique phase", config.sft_critique_steps, config.sft_critique_phase_share))
    for name, steps, critique_share in phases:
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s, steps=steps: min(1.0, (s + 1) / 20) * max(0.05, 1 - s / max(1, steps)))
        for step in range(steps):
            loss = model(**sft_batch(tokenizer, task, rng, config, critique_share)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if (step + 1) % 100 == 0:
                recent = losses[-100:]
                log(f"{name} step {step + 1}/{steps} loss {sum(recent) / len(recent):.3f}")
    model.eval()
    return losses


def check_fits(config: TinyModelConfig, tokenizer, available: int | None = None) -> None:
    """Refuse, before building, a shape whose warm start cannot fit in memory.

    Why before: Linux hands out memory it does not have (overcommit), so an oversized model is not refused at
    allocation but killed by the kernel mid-initialisation, with no message at all. The SFT warm start holds the
    float32 weights, their gradients and AdamW's two moments: 16 bytes a parameter, activations aside (4 bytes
    with no SFT steps: the weights alone)."""
    with torch.device("meta"):  # the shape alone: no memory
        parameters = sum(p.numel() for p in build_tiny_model(config, tokenizer).parameters())
    need, held = (16 * parameters, "float32 weights, gradients and AdamW's two moments") if config.sft_steps else \
        (4 * parameters, "float32 weights; no SFT steps")
    available = available_memory() if available is None else available
    if available is not None and need > available:
        raise RecipeError([f"model.tiny: sigx/tiny of this shape ({shape_words(config)}) has "
                           f"{parameters / 1e6:,.1f}M parameters: its warm start needs {need / 2**30:,.1f} GiB "
                           f"({held}) and this machine has "
                           f"{available / 2**30:,.1f} GiB available; make it smaller"])


def shape_words(config: TinyModelConfig) -> str:
    return (f"hidden_size {config.hidden_size}, num_layers {config.num_layers}, intermediate_size "
            f"{config.intermediate_size}")


def out_of_memory(err: BaseException) -> bool:
    """An allocation the machine refused (host or GPU), not a bug: PyTorch's CPU allocator raises a plain
    RuntimeError ("can't allocate memory"), its GPU allocator ``torch.OutOfMemoryError``, Python ``MemoryError``."""
    return isinstance(err, (MemoryError, torch.OutOfMemoryError)) or "allocate memory" in str(err)


def ensure_tiny_base(config: TinyModelConfig, task: Task, task_config, log=print) -> Path:
    """Path of the warm-started tiny model for this (model, task) config, building it once if needed.

    Safe under concurrency (a file lock per key) and against crashes (built in a temporary folder, then
    renamed into place), so parallel ablation workers share one build and a killed build leaves nothing half
    written.
    """
    root = cache_root() / "tiny"
    key = tiny_cache_key(config, task_config)
    target = root / key
    if (target / "sigx_tiny.json").is_file():  # built: no lock needed (complete by rename), a read-only cache works
        return target
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "sigx_tiny.json").is_file():
            return target
        phase = f" + a critique phase of {config.sft_critique_steps}" if config.sft_critique_steps else ""
        log(f"building sigx/tiny ({key}): SFT warm start, {config.sft_steps} steps{phase}")
        tokenizer = build_char_tokenizer()
        check_fits(config, tokenizer)
        torch.manual_seed(config.sft_seed)  # the weight init too: a cached base must not depend on the process
        try:
            model = build_tiny_model(config, tokenizer)
            losses = sft_warm_start(model, tokenizer, task, config, log)
        except (MemoryError, RuntimeError) as err:
            if not out_of_memory(err):
                raise
            raise RecipeError([f"model.tiny: this machine's memory cannot build sigx/tiny of this shape "
                               f"({shape_words(config)}, sft_batch_size {config.sft_batch_size}): "
                               f"{' '.join(str(err).split()) or type(err).__name__}; make it smaller"]) from None
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}-"))
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "sigx_tiny.json").write_text(json.dumps({"key": key, "sft_final_loss": losses[-1] if losses else None}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    return target
