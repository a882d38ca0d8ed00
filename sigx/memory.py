"""The memory a recipe's run needs on its GPU, estimated before anything is loaded (``sigx validate``).

Why estimate: a run that does not fit fails only after minutes of model loading and rollout; the plan says which
part is large and which knob shrinks it (LoRA, activation checkpointing, smaller micro-batches). The model's shape
comes from its config alone (instantiated on PyTorch's ``meta`` device: no weights are read), so the plan costs a
second even for a 7B model, as long as its ``config.json`` is on this machine (a local path or the hub cache).

What is counted, per process (one run on one device):
- weights in ``model.dtype``; with LoRA, plus the adapters;
- gradients and AdamW's two moments, in the dtype of the trained weights (all of them, or the adapters);
- the KL reference (``kl_beta > 0``): a second copy of the weights, except with LoRA (adapters switched off);
- activations kept for the backward pass of one micro-batch: per token and layer, the inputs of the projections
  and of the MLP's activation, (7 h + 2 h_kv + 4 i) values (h hidden, h_kv the key/value width, i the MLP width);
  with activation checkpointing, each layer's input (h) plus one layer's full set; and the logits, which sigx
  turns to float32 and log-softmaxes (3 vocabulary-sized rows per token);
- the rollout's KV cache for a whole step's sequences (``hf``, ``hf_synced``; on N processes with
  ``rollout.seeding: sample``, for the process's share of the groups), and for ``hf_synced`` its own copy of the
  weights in ``rollout.dtype``; vLLM takes ``rollout.gpu_memory_utilization`` of the card; on N processes, the
  other processes' weight shards, gathered for the rollout phase;
- in host memory, not on the GPU: the staleness window's weight snapshots.

A sequence is taken as ``prompt_tokens`` (an assumption, stated in the table) plus ``max_new_tokens`` per model
turn plus the environment's replies between turns. CUDA's own context, allocator fragmentation and temporary
buffers are not counted: keep ~10-20% free. ``bench/memory_check.py`` compares the estimate with the bytes a run
holds, measured on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from sigx.config import Recipe
from sigx.host import available_memory as available_host_memory

BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
GIB = 2**30


@dataclass(frozen=True)
class Line:
    component: str
    bytes: float
    note: str
    on_gpu: bool = True


@dataclass(frozen=True)
class Shape:
    """What the estimate needs of a model."""

    params: int
    layers: int
    hidden: int
    kv_width: int  # key/value heads x head dimension
    intermediate: int
    vocab: int


class ShapeUnknown(ValueError):
    pass


def model_config(recipe: Recipe):
    """The transformers config of the recipe's model, without reading weights."""
    if recipe.model.name == "sigx/tiny":
        from sigx.models.tiny import tiny_model_config
        from sigx.models.tokenizer import build_char_tokenizer

        return tiny_model_config(recipe.model.tiny, build_char_tokenizer())
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(recipe.model.name, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ShapeUnknown(f"model.name: {recipe.model.name}: its config.json is not on this machine "
                           f"({str(err).splitlines()[0][:80] if str(err) else type(err).__name__})") from None


def _meta_model(config):
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def shape_of(config) -> Shape:
    model = _meta_model(config)
    params = sum(p.numel() for p in model.parameters())  # tied weights are one parameter
    text = getattr(config, "text_config", config)
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    kv = getattr(text, "num_key_value_heads", None) or heads
    return Shape(params, text.num_hidden_layers, text.hidden_size, kv * head_dim, text.intermediate_size,
                 text.vocab_size)


def adapter_params(config, recipe: Recipe) -> int:
    from sigx.engine.lora import add_adapters

    model = _meta_model(config)
    return sum(p.numel() for p in add_adapters(model, recipe.training.lora, seed=0))


def turns_of(recipe: Recipe) -> tuple[int, int]:
    """(model turns, environment replies of at most how many tokens between them) of one episode, at most."""
    task = recipe.task
    if task.name == "search":
        return task.max_turns, 16
    if task.name == "search_qa":
        return task.max_searches + 1, task.max_observation_tokens
    return 1, 0


def sequence_tokens(recipe: Recipe, prompt_tokens: int) -> int:
    """The longest sequence of one episode: the prompt, every model turn's budget, the replies between turns."""
    turns, reply = turns_of(recipe)
    return prompt_tokens + turns * recipe.rollout.max_new_tokens + (turns - 1) * reply


def plan(recipe: Recipe, prompt_tokens: int = 256, gpu_gib: float | None = None, nproc: int = 1) -> list[Line]:
    """The estimate, one line per component (see the module docstring), per process of a run on ``nproc``
    (``sigx train --nproc``: FSDP2 divides weights, gradients and AdamW state by ``nproc``, and each process
    trains 1/``nproc`` of every mini-batch's rows; each process gathers the weights whole for the rollout
    phase and samples the whole step, or its share of the groups with ``rollout.seeding: sample``; the KL
    reference is held whole)."""
    config = model_config(recipe)
    s = shape_of(config)
    r, t = recipe.rollout, recipe.training
    w = BYTES[recipe.model.dtype]
    lora = t.lora.r > 0
    adapters = adapter_params(config, recipe) if lora else 0
    trained = adapters if lora else s.params
    seq = sequence_tokens(recipe, prompt_tokens)
    sequences = t.prompts_per_step * r.group_size
    own = -(-sequences // (t.mini_batches * nproc))  # a process's rows of one mini-batch
    if t.micro_batch_tokens:
        micro_tokens = min(t.micro_batch_tokens, max(seq, 1) * own)
        micro = f"{t.micro_batch_tokens} tokens (training.micro_batch_tokens)"
    else:
        rows = min(t.micro_batch_size, own) if t.micro_batch_size else own
        micro_tokens = rows * seq
        micro = f"{rows} sequences x {seq} tokens"
    act = 2 if t.autocast == "bfloat16" else w
    per_token_layer = 7 * s.hidden + 2 * s.kv_width + 4 * s.intermediate
    if recipe.model.gradient_checkpointing:
        activations = micro_tokens * (s.layers * s.hidden + per_token_layer) * act
        how = "checkpointed: each layer's input, one layer's full set"
    else:
        activations = micro_tokens * s.layers * per_token_layer * act
        how = "every layer's, no checkpointing"
    logits = micro_tokens * s.vocab * (act + 4 + 4)
    shards = f", 1/{nproc} per process (FSDP2)" if nproc > 1 else ""
    lines = [
        Line("weights", s.params * w / nproc, f"{s.params / 1e6:,.1f}M parameters in {recipe.model.dtype}{shards}"),
        Line("gradients", trained * w / nproc, f"{'the adapters' if lora else 'every weight'} ({trained / 1e6:,.2f}M)"
             f"{shards}"),
        Line("optimizer (AdamW)", 2 * trained * w / nproc, f"two moments per trained weight{shards}"),
        Line("activations", activations, f"one micro-batch of {micro}: {how}"),
        Line("logits", logits, f"the micro-batch's logits, float32 copy and log-softmax ({s.vocab:,} words)"),
    ]
    if lora:
        lines.insert(1, Line("LoRA adapters", adapters * w, f"r {t.lora.r} on {t.lora.target_modules}"))
    if t.kl_beta > 0 and not lora:
        lines.append(Line("KL reference", s.params * w, "a frozen copy of the base weights (LoRA would need none)"))
    split = nproc > 1 and r.seeding == "sample"
    sampled = -(-t.prompts_per_step // nproc) * r.group_size if split else sequences
    kv = sampled * seq * s.layers * 2 * s.kv_width * (BYTES.get(r.dtype, w) if r.dtype != "auto" else w)
    if r.backend == "vllm":
        lines.append(Line("rollout engine (vLLM)", (gpu_gib or 0) * GIB * r.gpu_memory_utilization,
                          f"rollout.gpu_memory_utilization {r.gpu_memory_utilization} of the card"
                          + ("" if gpu_gib else " (give --gpu-memory to count it)")))
    else:
        lines.append(Line("rollout KV cache", kv, f"{sampled} sequences x {seq} tokens"
                          + (" (this process's groups: rollout.seeding sample)" if split else "")))
        if nproc > 1 and r.backend == "hf":  # (hf_synced samples from its own copy: pushed a weight at a time)
            lines.append(Line("rollout: gathered weights", s.params * w * (nproc - 1) / nproc,
                              "the other processes' shards, gathered for the rollout phase (FSDP2 unshard)"))
        if r.backend == "hf_synced":
            rollout_bytes = BYTES.get(r.dtype, w) if r.dtype != "auto" else w
            lines.append(Line("rollout weights", s.params * rollout_bytes, "hf_synced's own copy"))
    if r.staleness:
        lines.append(Line("staleness snapshots", (r.staleness + 1) * trained * w,
                          f"{r.staleness + 1} copies of the trained weights", on_gpu=False))
    return lines


def gpu_total(lines: list[Line]) -> float:
    return sum(line.bytes for line in lines if line.on_gpu)


def shortfall(recipe: Recipe, processes: int = 1, nproc: int = 1) -> str | None:
    """Why this machine will not hold the run, by the plan at its lower bound (prompts of no tokens), or None.

    Why a warning at start: a run too big for its machine fails only after its model is loaded and its first
    rollout sampled, and on a CPU not even with a message (Linux overcommits, then its kernel kills the process).
    Why the lower bound and a warning, not a refusal: the plan is an estimate (docs/gpu.md: within ~10% on what
    it counts); only a run that cannot fit even with empty prompts is called out. ``processes``: runs side by side
    on this machine (an ablation's workers); ``nproc``: the processes of one run (``sigx train --nproc``)."""
    import torch

    from sigx.config import RecipeError

    try:
        lines = plan(recipe, prompt_tokens=0, nproc=nproc)
    except (ShapeUnknown, RecipeError):
        return None  # a model whose shape is unknown here: nothing to compare; a bad recipe fails elsewhere
    if torch.cuda.is_available():
        if processes * nproc > 1:  # the GPUs are the other processes': asking would put a CUDA context on GPU 0
            return None
        need, have, where = gpu_total(lines), torch.cuda.mem_get_info()[0], "the GPU has"
        largest = max((line for line in lines if line.on_gpu), key=lambda line: line.bytes)
    else:
        need = sum(line.bytes for line in lines) * processes * nproc
        have, where = available_host_memory(), "this machine has"
        largest = max(lines, key=lambda line: line.bytes)
    if have is None or need <= have:
        return None
    side = f" ({processes * nproc} processes)" if processes * nproc > 1 else ""
    return (f"by sigx's memory plan this run needs at least {need / GIB:,.1f} GiB{side} and {where} "
            f"{have / GIB:,.1f} GiB free (its largest part: {line_name(largest)} {largest.bytes / GIB:,.1f} GiB): "
            "it will likely stop for memory; `sigx validate` shows the plan (training.micro_batch_size or "
            "micro_batch_tokens, training.lora.r, model.gradient_checkpointing, a smaller group shrink it)")


def line_name(line: Line) -> str:
    return line.component + ("" if line.on_gpu else " (host)")


def _storage_bytes(tensors) -> int:
    """Bytes of the storages behind ``tensors``, each storage once."""
    seen: dict[int, int] = {}
    for tensor in tensors:
        if tensor is not None:
            seen[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
    return sum(seen.values())


def measure_held(recipe: Recipe, prompt_tokens: int) -> dict[str, int]:
    """What a run of the recipe's shape holds, measured on this machine's CPU: the bytes of weights, gradients and
    AdamW state after one optimizer step, and the activations one micro-batch's forward pass keeps for the
    backward pass (counted as saved, torch.autograd.graph.saved_tensors_hooks; each storage once), on sigx's loss
    path (token_logprobs). A CPU has no allocator peak to read: this is what must be held, what ``plan``
    estimates (its activations and logits together)."""
    import torch
    from transformers import AutoModelForCausalLM

    from sigx.engine.lora import add_adapters
    from sigx.engine.trajectory import token_logprobs

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(model_config(recipe)).to(getattr(torch, recipe.model.dtype))
    if recipe.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    trained = add_adapters(model, recipe.training.lora, 0) if recipe.training.lora.r else list(model.parameters())
    model.train()
    r, t = recipe.rollout, recipe.training
    seq = sequence_tokens(recipe, prompt_tokens)
    rows = t.micro_batch_size or -(-(t.prompts_per_step * r.group_size) // t.mini_batches)
    ids = torch.randint(0, model.config.vocab_size, (rows, seq))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda x: saved.append(x) or x, lambda x: x):
        logp = token_logprobs(model, ids, torch.ones_like(ids), r.temperature)
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    activations = _storage_bytes(x for x in saved if x.untyped_storage().data_ptr() not in weights)
    optimizer = torch.optim.AdamW(trained, lr=1e-4)
    logp.sum().backward()
    optimizer.step()
    state = [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.dim() > 0]
    return {"weights": _storage_bytes(model.parameters()), "gradients": _storage_bytes(p.grad for p in trained),
            "optimizer (AdamW)": _storage_bytes(state), "activations + logits": activations}
