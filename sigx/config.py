"""The recipe: every knob of a sigx run, validated by Pydantic v2.

A recipe is one YAML file. Every section forbids unknown keys so that a typo (``trainig.lr``) is an error
rather than a silently ignored setting; every field carries its default so that the smallest useful recipe is
a few lines. ``load_recipe`` turns any problem into :class:`RecipeError`, whose lines each name the field path
and what is allowed, so that the CLI can print them without a traceback.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag,
                      ValidationError, model_validator)

from sigx.design import make_design


class RecipeError(ValueError):
    """A recipe (or an override) that cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))

    def __reduce__(self):  # survives pickling intact (raised in a worker process, re-raised in the parent)
        return type(self), (self.problems,)


def _yaml_switch(value: Any) -> Any:
    """YAML 1.1 (PyYAML) reads an unquoted on/off/yes/no as a boolean; a switch field takes it back as the word,
    so that ``chat_template: off`` means what it says."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


#: a field whose values include the words "on"/"off"
Switch = BeforeValidator(_yaml_switch)


FIELD_PROBLEM = "problem in field "  # marks the error so that its field joins the error's path
#: the longest text any field takes (a prompt instruction; a model path is at most PATH_MAX, 4096)
MAX_TEXT = 10_000
#: the largest integer any field takes: torch's and numpy's 64-bit range
MAX_INT = 2**63 - 1
MAX_NEW_TOKENS = 2**20


class Strict(BaseModel):
    """Every recipe section: unknown keys are errors (a typo is never silently ignored), numbers must be finite
    and fit 64 bits, and text must be text (no NUL byte, not megabytes)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _plain_values(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name)
                if field is None:
                    continue
                if isinstance(value, bool) and _numeric(field.annotation):
                    raise ValueError(f"{FIELD_PROBLEM}{name}: expected a number, got a boolean ({str(value).lower()})")
                if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
                    raise ValueError(f"{FIELD_PROBLEM}{name}: {str(value)[:12]}... is beyond a 64-bit integer "
                                     f"(at most {MAX_INT})")
                if isinstance(value, str) and "\0" in value:
                    raise ValueError(f"{FIELD_PROBLEM}{name}: contains a NUL byte")
                if isinstance(value, str) and len(value) > MAX_TEXT:
                    raise ValueError(f"{FIELD_PROBLEM}{name}: {len(value)} characters; at most {MAX_TEXT} allowed")
        return data


def _numeric(annotation: Any) -> bool:
    """int or float (possibly optional), and not bool."""
    args = getattr(annotation, "__args__", None)
    if args:
        return any(_numeric(a) for a in args if a is not type(None))
    return annotation in (int, float)


# --------------------------------------------------------------------------------------------------- field roles
#: What a change of a field means, declared once, on the field (``**role(...)``), and read by every check that
#: must know it: which fields the shared engine fixes, which a field factor may vary, which a resumed run or a
#: resumed ablation store may change, which the warm start's cache key leaves out. A field without a role is
#: part of what a run measures: changing it makes another experiment.
ROLES = {
    "engine": "fixed when the shared engine builds its rollout backend: one engine serves every cell, so no "
              "factor may vary it",
    "layout": "how the update is computed, not what: micro-batching, skipped zero-gradient rows, activation "
              "checkpointing change float rounding and memory only, so a run or a store resumes with another value",
    "extent": "how long a run goes and how often it checkpoints: a resumed run may change it",
    "execution": "where and how runs execute and are logged (and, for a store, which seeds and which fraction of "
                 "the design it runs: a cell depends only on its own levels and seed): a run or a store resumes "
                 "with another value",
    "cell_seed": "replaced by each cell's own seed in an ablation: a store resumes with another value",
    "ablation_only": "read by `sigx ablate`, never by a run: a resumed run ignores it",
    "held_out": "shapes the held-out set only: the warm start's cache key leaves it out, so changing it reuses "
                "the built model",
    "per_cell": "a section whose fields a field factor may vary (cells differ in them; the engine's are excepted)",
}


def role(*names: str) -> dict:
    """Keyword arguments of ``Field`` declaring a field's roles (see ROLES)."""
    unknown = [n for n in names if n not in ROLES]
    if unknown:
        raise ValueError(f"unknown field role {unknown[0]!r}; allowed: {', '.join(ROLES)}")
    return {"json_schema_extra": {"roles": list(names)}}


def roles_of(field) -> tuple[str, ...]:
    """The roles declared on a pydantic field."""
    extra = field.json_schema_extra
    return tuple(extra.get("roles", ())) if isinstance(extra, dict) else ()


def field_names_with_role(model: type[BaseModel], name: str) -> tuple[str, ...]:
    """The fields of one section that carry role ``name``, in the section's order."""
    return tuple(f for f, info in model.model_fields.items() if name in roles_of(info))


def _sections_of(field_name: str, annotation: Any) -> list[type[BaseModel]]:
    """The sections (models) a field holds: its own type, a union's members, a task's registered configs."""
    if field_name == "task" and annotation is Any:
        return list(TASK_CONFIGS.values())
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in getattr(annotation, "__args__", ()) or () for m in _sections_of("", a)]


def fields_with_role(name: str, model: type[BaseModel] | None = None,
                     prefix: tuple[str, ...] = ()) -> frozenset[tuple[str, ...]]:
    """Every field path (``("training", "steps")``) of the recipe, or of ``model``, that carries role ``name``.
    A section that carries it stands for everything under it."""
    found: set[tuple[str, ...]] = set()
    for field_name, info in (model or Recipe).model_fields.items():
        path = prefix + (field_name,)
        if name in roles_of(info):
            found.add(path)
        for section in _sections_of(field_name, info.annotation):
            found |= fields_with_role(name, section, path)
    return frozenset(found)


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


# --------------------------------------------------------------------------------------------------- tasks
class ArithmeticTaskConfig(Strict):
    """Left-to-right chains such as ``7+5-3=``, solved step by step (``7+5=12;12-3=9#9``)."""

    name: Literal["arithmetic"] = Field("arithmetic", description="the task")
    min_ops: int = Field(2, ge=1, description="fewest operations in a chain")
    max_ops: int = Field(3, ge=1, description="most operations in a chain")
    max_operand: int = Field(9, ge=1, le=99, description="largest operand")
    eval_prompts: int = Field(128, ge=1, description="held-out prompts (a fixed set, never drawn for training)",
                              **role("held_out"))
    seed: int = Field(1234, description="seed of the held-out set", **role("held_out"))

    @model_validator(mode="after")
    def _ops_order(self) -> "ArithmeticTaskConfig":
        if self.min_ops > self.max_ops:
            raise ValueError(f"min_ops ({self.min_ops}) must be <= max_ops ({self.max_ops})")
        return self


class SearchTaskConfig(Strict):
    """Multi-hop questions over a generated knowledge base, answered through ``s[...]`` search actions."""

    name: Literal["search"] = Field("search", description="the task")
    num_people: int = Field(40, ge=4, description="people in the generated knowledge base")
    num_cities: int = Field(8, ge=2, description="cities in the generated knowledge base")
    min_hops: int = Field(1, ge=1, description="fewest relations a question chains")
    max_hops: int = Field(2, ge=1, le=4, description="most relations a question chains")
    max_turns: int = Field(4, ge=1, description="agent turns an episode may take (the last one must answer)")
    eval_prompts: int = Field(128, ge=1, description="held-out questions (split off by a hash of the prompt)",
                              **role("held_out"))
    seed: int = Field(1234, description="seed of the knowledge base and the held-out order")
    interface: Literal["compact", "natural"] = Field(
        "compact", description="compact: the tiny model's q:/p:/s[...] format; natural: a plain-language "
        "instruction and Search-R1-style <search>/<answer> tags, for hub instruct models")

    @model_validator(mode="after")
    def _hops_order(self) -> "SearchTaskConfig":
        if self.min_hops > self.max_hops:
            raise ValueError(f"min_hops ({self.min_hops}) must be <= max_hops ({self.max_hops})")
        return self


class GSM8KTaskConfig(Strict):
    """GSM8K-style word problems from a dataset (rows: ``question``, ``answer`` ending in ``#### <number>``),
    for hub models: from a local copy (``path``) or the hub (``dataset``)."""

    name: Literal["gsm8k"] = Field("gsm8k", description="the task")
    path: str | None = Field(None, min_length=1, description="local directory with train.jsonl/test.jsonl (or "
                             ".parquet), or one such file; wins over dataset")
    dataset: str = Field("openai/gsm8k", min_length=1, description="hub dataset id (needs the datasets package "
                         "and a network)")
    subset: str = Field("main", min_length=1, description="hub dataset configuration")
    train_split: str = Field("train", min_length=1, description="split (or file name prefix) of the training questions")
    eval_split: str = Field("test", min_length=1, description="split (or file name prefix) of the held-out questions",
                            **role("held_out"))
    eval_prompts: int = Field(256, ge=1, description="held-out questions used (shuffled with seed)", **role("held_out"))
    answer_format: Literal["strict", "flexible"] = Field(
        "flexible", description="strict: only a '#### <number>' line counts; flexible: else the last number")
    instruction: str = Field("Solve the problem step by step. Then write the final answer as a number on its own "
                             "line in the form '#### <number>'.", description="appended to every question")
    seed: int = Field(1234, description="seed of the held-out order")


def _shown(value, width: int) -> str:
    """A value quoted for an error line, cut to ``width`` characters (a hostile recipe's long value stays one line)."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _http_url(value: str) -> str:
    """An http(s) URL with a host: a server's address checked when the recipe is read, not at the first search."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = _shown(value, 60)
        raise ValueError(f"{shown} is not an http(s) URL with a host (http://HOST[:PORT]/PATH)")
    return value


class QADataSource(Strict):
    """One QA data set in Search-R1's format (rows: ``question``, ``golden_answers``; optional ``data_source``,
    ``reference_path``, ``reference_plan``): a local JSONL/Parquet file, or a hub dataset through ``datasets``."""

    path: str | None = Field(None, min_length=1, description="local .jsonl or .parquet file; wins over hub")
    hub: str | None = Field(None, min_length=1, description="hub dataset id, e.g. RUC-NLPIR/FlashRAG_datasets "
                            "(needs datasets and a network)")
    subset: str | None = Field(None, min_length=1, pattern=r"^[^/]+$", description="hub dataset configuration, "
                               "e.g. nq")
    split: str = Field("train", min_length=1, description="hub split")
    name: str | None = Field(None, min_length=1, pattern=r"^[^/]+$", description="the set's name in metrics and "
                             "summaries (eval/<name>/reward: no '/'; default: the hub subset or the file's stem)")
    limit: int | None = Field(None, ge=1, description="use only the first `limit` rows (after a seeded shuffle "
                              "for evaluation sets)")

    @model_validator(mode="after")
    def _one_source(self) -> "QADataSource":
        if not self.path and not self.hub:
            raise ValueError("give path (a local .jsonl/.parquet file) or hub (a dataset id)")
        return self

    @property
    def label(self) -> str:
        return self.name or self.subset or Path(self.path or self.hub).stem.split(".")[0]


class RetrieverConfig(Strict):
    """Where searches go. ``bm25``: sigx's own index over a local corpus file (JSONL rows with ``id``, ``title``
    and ``text``, or Search-R1's ``contents`` = title, newline, text), built once with bm25s and cached beside it.
    ``http``: a retrieval server speaking Search-R1's protocol (POST ``{"queries", "topk", "return_scores"}``),
    e.g. its dense E5 server; sigx does not embed."""

    kind: Literal["bm25", "http"] = Field("bm25", description="bm25: a local index; http: a retrieval server")
    corpus: str | None = Field(None, description="bm25: the corpus JSONL file")
    index_dir: str | None = Field(None, description="bm25: where the index is cached (default: beside the corpus, "
                                  "<corpus>.bm25s/)")
    url: Annotated[str, AfterValidator(_http_url)] | None = Field(
        None, description="http: the server's endpoint, e.g. http://127.0.0.1:8000/retrieve")
    topk: int = Field(3, ge=1, le=100, description="passages per search (the papers: 3)")
    timeout_s: float = Field(30.0, gt=0, description="http: seconds to wait for one batch of queries")
    retries: int = Field(3, ge=0, le=20, description="http: retries of a failed request (backing off 1, 2, 4 s ...)")

    @model_validator(mode="after")
    def _kind_needs(self) -> "RetrieverConfig":
        if self.kind == "bm25" and not self.corpus:
            raise ValueError("kind bm25 needs corpus (a JSONL file of passages)")
        if self.kind == "http" and not self.url:
            raise ValueError("kind http needs url (the retrieval server's endpoint)")
        return self


class QASearchTaskConfig(Strict):
    """Agentic retrieval QA as Search-R1, Search-P1 and SORL evaluate it: questions from QA data sets, searches
    against a real retriever, answers scored by exact match and accuracy (a golden answer contained)."""

    name: Literal["search_qa"] = Field("search_qa", description="the task")
    train: list[QADataSource] = Field(min_length=1, description="training sets, mixed (Search-R1: NQ + HotpotQA)")
    eval: list[QADataSource] = Field(min_length=1, description="held-out sets, each reported on its own",
                                     **role("held_out"))
    retriever: RetrieverConfig = Field(description="BM25 over a local corpus, or a retrieval server")
    template: Literal["search_r1", "search_p1", "compact"] = Field(
        "search_r1", description="search_r1: Search-R1's prompt and <search>/<information> tags; search_p1: "
        "Search-P1's (App. D.1: a plan in the first <reasoning>, <tool_call>/<tool_response>); compact: a short "
        "lowercase prompt the tiny model can read (CPU tests and demos)")
    max_searches: int = Field(4, ge=1, le=32, description="environment replies an episode may get (Search-P1's "
                              "action budget B = 4; Search-R1's max_turns); the turn after the last must answer")
    force_answer: bool | None = Field(None, description="after the last search, open <answer> for the model "
                                      "(Search-P1 Alg. 2, lines 15-16); off: the episode just ends. Default: on, "
                                      "except under template search_r1 (Search-R1 has no forced answer)")
    max_observation_tokens: int = Field(500, ge=1, description="tokens one environment reply may hold (per turn, "
                                        "as Search-R1's max_obs_length: 500); a longer one is cut, never its "
                                        "closing tag nor an opened <answer>")
    passage_words: int | None = Field(None, ge=1, description="words kept of each retrieved passage's text. "
                                      "Default: whole passages under template search_r1 (as Search-R1 renders "
                                      "them), 100 under the others (wiki-18 passages are 100 words)")
    reward: Literal["em", "acc"] = Field("em", description="outcome reward: em = exact match after normalisation "
                                         "(Search-R1's training reward); acc = a golden answer contained in the "
                                         "answer (the papers' reported ACC)")
    seed: int = Field(1234, description="seed of the held-out sets' order", **role("held_out"))

    @model_validator(mode="after")
    def _eval_sets_apart(self) -> "QASearchTaskConfig":
        labels = [source.label for source in self.eval]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"{FIELD_PROBLEM}eval: two sets are named {twice[0]!r} (their per-set metrics would "
                             "merge); give each a name")
        return self


#: every task config by its ``name``: the single source for the union below and for error messages
#: every task's recipe section by its ``name``: the built-in ones here, others added by
#: ``sigx.tasks.register_task(name, factory, config=...)`` (through register_task_config); read when a recipe
#: is validated, so a task registered from the user's own module is as valid as a built-in one
TASK_CONFIGS: dict[str, type[Strict]] = {"arithmetic": ArithmeticTaskConfig, "search": SearchTaskConfig,
                                         "gsm8k": GSM8KTaskConfig, "search_qa": QASearchTaskConfig}
DEFAULT_TASK = "arithmetic"


def register_task_config(config: type[Strict]) -> None:
    """Make a task's recipe section valid under its name (its ``name`` field's default, a Literal of one word)."""
    field = config.model_fields.get("name")
    name = field.default if field is not None else None
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"{config.__name__}: a task config needs a field name whose default is the task's name "
                         "(lowercase letters, digits, _)")
    if TASK_CONFIGS.get(name, config) is not config:
        raise ValueError(f"task {name!r} already has a recipe section ({TASK_CONFIGS[name].__name__})")
    TASK_CONFIGS[name] = config


def _task_section(value: Any) -> Any:
    """The task section validated by the config registered under its ``name``."""
    if isinstance(value, tuple(TASK_CONFIGS.values())):
        return value
    if not isinstance(value, dict):
        raise ValueError("the task section is a mapping with the task's name and its fields")
    name = value.get("name", DEFAULT_TASK)
    if not isinstance(name, str) or name not in TASK_CONFIGS:
        shown = _shown(name, 40)
        raise ValueError(f"unknown task {shown}; allowed: {', '.join(TASK_CONFIGS)}")
    return TASK_CONFIGS[name].model_validate(value)


#: a recipe's task section: one of TASK_CONFIGS, chosen by its name when the recipe is validated
TaskConfig = Annotated[Any, BeforeValidator(_task_section)]


# --------------------------------------------------------------------------------------------------- rollout
class RolloutConfig(Strict):
    """How trajectories are sampled. ``hf`` samples from the training model itself (CPU default); ``vllm`` is
    the GPU engine, colocated with training, whose weights are pushed in place after every update;
    ``hf_synced`` samples from a separate transformers copy kept current by the same push (vLLM's situation
    on CPU: what the weight-sync tests use; on a GPU without vLLM, with ``dtype: bfloat16``, ``decoder: static``
    and ``compile: true``, the fast transformers rollout: bf16 weights, so no per-step casts)."""

    backend: Literal["hf", "hf_synced", "vllm"] = Field("hf", description="hf: sample from the training model "
                                                        "itself (CPU default); hf_synced: a separate pushed copy "
                                                        "(in dtype bfloat16 with decoder static: the GPU choice "
                                                        "without vLLM); vllm: the colocated GPU engine",
                                                        **role("engine"))
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
    advantage: Literal["grpo", "dr_grpo"] = Field("grpo", description="grpo: (r - mean) / std per group; dr_grpo: "
                                                  "r - mean (Dr. GRPO)")
    policy_loss: Literal["ppo_clip", "gspo"] = Field("ppo_clip", description="the baseline's loss (SSPO and SORL "
                                                     "replace it when enabled): GRPO's token clip or GSPO")
    clip_eps: float = Field(0.2, gt=0, description="PPO band, low side [1 - eps, ...] (ppo_clip)")
    clip_eps_high: float | None = Field(None, gt=0, description="DAPO clip-higher; defaults to clip_eps")
    gspo_clip_eps: float = Field(3e-4, gt=0, description="GSPO's sequence-ratio band, low side (GSPO v2 sec. 5.1)")
    gspo_clip_eps_high: float = Field(4e-4, gt=0, description="GSPO's sequence-ratio band, high side (sec. 5.1)")
    loss_aggregation: Literal["token-mean", "seq-mean"] = Field(
        "token-mean", description="token-mean: every generated token weighs the same (DAPO); seq-mean: every "
        "sequence (GRPO, GSPO). A loss that defines its own (SSPO) ignores it")
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
        True, description="leave rows whose advantage is exactly 0 out of the forward/backward: with no KL term "
        "and a loss proportional to the advantage their gradient is exactly zero, and the loss normaliser still "
        "counts them, so the update is the same for less work. Loss diagnostics then cover the trained rows",
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


# --------------------------------------------------------------------------------------------------- techniques
# One section per technique. The formulas live in the technique modules (sigx/techniques/<name>.py); the
# knobs live here, in the one recipe schema, so that every knob of a run is validated and documented in one place.
class TechniqueConfig(Strict):
    """What every technique section has: the switch."""

    enabled: bool = Field(False, description="switch the technique on (or --enable NAME)")


class SSPOConfig(TechniqueConfig):
    """SSPO (arXiv 2602.19327): soft sigmoid gates on token ratios, geometric mean into a sequence weight; the
    loss is averaged per sequence (whatever ``training.loss_aggregation`` says), as GMPO and SAPO do."""

    tau_pos: float = Field(1.0, gt=0, description="gate temperature for positive advantages (SAPO's tau_pos)")
    tau_neg: float = Field(1.05, gt=0, description="gate temperature for negative advantages (SAPO's tau_neg)")


class LLMJudgeConfig(Strict):
    """Search-P1's evaluator LLM (the paper's §5.4, App. D.3): any OpenAI-compatible chat endpoint, e.g. a local
    ``vllm serve MODEL``. Answers are cached on disk by (model, prompt), so a resumed run asks nothing twice."""

    base_url: Annotated[str, AfterValidator(_http_url)] = Field("http://localhost:8000/v1",
                                                                 description="the endpoint's base URL (…/v1)")
    model: str = Field("Qwen/Qwen3-32B", description="model name the endpoint serves (the paper's evaluator is "
                       "HY 2.0-Instruct; Qwen3-32B came within 0.8 ACC of it, its Table 4)")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key (a local "
                             "server needs none)")
    timeout_s: float = Field(60.0, gt=0, description="seconds per request before it is retried")
    max_retries: int = Field(3, ge=0, description="retries of a failed request (transport error, 5xx, 429) and of "
                             "a reply that is not the rubric's JSON")
    concurrency: int = Field(16, ge=1, description="requests in flight at once")
    max_tokens: int = Field(512, ge=16, description="tokens the evaluator may write per evaluation")
    json_mode: bool = Field(True, description="ask for response_format json_object (vLLM, OpenAI); off for a "
                            "server that does not support it")
    cache_path: str | None = Field(None, description="SQLite file of cached evaluations (default: "
                                   "$SIGX_CACHE/judge/evaluations.sqlite)")


class SearchP1Config(TechniqueConfig):
    """Search-P1 (arXiv 2602.22576): path-centric total reward (Eq. 4) for every trajectory, correct or not:
    R = lambda_p R_path + lambda_a R_outcome + lambda_f R_format, with R_path = max(S_self, S_ref) (Eq. 6-7)."""

    path_weight: float = Field(0.3, ge=0, description="lambda_p in Eq. 4 (App. B.2: 0.3)")
    outcome_weight: float = Field(0.6, ge=0, description="lambda_a in Eq. 4 (App. B.2: 0.6)")
    format_weight: float = Field(0.1, ge=0, description="lambda_f in Eq. 4 (App. B.2: 0.1)")
    outcome_alpha: float = Field(0.8, ge=0, le=1, description="alpha of the soft outcome score (Eq. 8: 0.8): a "
                                 "wrong answer scores alpha r_acc + (1 - alpha) r_reason")
    soft_outcome: bool = Field(True, description="score wrong answers softly (Eq. 8); off: R_outcome is 0/1 (the "
                               "paper's 'w/o soft scoring' ablation, §4.3.3)")
    efficiency: bool = Field(True, description="multiply each track by n_effective / n_actions against redundant "
                             "steps (Eq. 6-7, §3.2.2); Alg. 3 omits the factor")
    judge: Literal["rules", "llm"] = Field("rules", description="who rates plans, matches steps and scores wrong "
                                           "answers: rules (exact matching, for sigx's built-in tasks) or an LLM "
                                           "(the paper's evaluator, App. D.3)")
    llm_judge: LLMJudgeConfig = Field(LLMJudgeConfig(), description="the evaluator endpoint, when judge: llm")


class GCRLConfig(TechniqueConfig):
    """GC-RL (arXiv 2602.22765): a second-order rollout. Each step, one correct and one wrong response per
    question enter a question-response cache (§3's data filter); a batch of pairs sampled from it (without
    replacement) is critiqued n times each; a critique earns 0.7 when its verdict matches (Eq. 2)."""

    pairs_per_step: int = Field(8, ge=0, description="<question, response> pairs sampled from the cache each step "
                                "(the paper does not give its number; sigx's default)")
    critiques_per_response: int | None = Field(None, ge=0, description="n critiques per pair (§3: n, the rollout's "
                                               "samples per question; None: rollout.group_size)")
    data_filter: bool = Field(True, description="§3's filter: per question, drop all-right and all-wrong groups, "
                              "else cache one right and one wrong response; off: two responses per question drawn uniformly "
                              "at random from all of the step's responses (§5.1's random sampling)")
    cache_capacity: int = Field(16, ge=1, description="pairs the cache holds; the oldest leave first, so the "
                                "critiqued responses stay recent (§5.3: dynamic data suits GC-RL); sigx's default, "
                                "the paper gives none")
    critique_groups: Literal["question", "pair"] = Field(
        "question", description="GRPO groups of critiques: question: mixed into the group of their question's "
        "responses when that question was rolled out this step (§3: 'mixed into the same group'), else grouped "
        "by question; pair: each pair's n critiques form their own group")
    critique_reward: float = Field(0.7, gt=0, description="reward of a critique whose verdict matches (Eq. 2: 0.7)")
    reward_reweighting: bool = Field(False, description="Eq. 3 (§5.1): a matching verdict earns 0.35 / E[R(r)] on a "
                                     "correct response and 0.35 / (1 - E[R(r)]) on a wrong one; the paper pairs it "
                                     "with data_filter off")
    denoise: bool = Field(False, description="§5.2, Eq. 4: add 0.1 k/n (verdict 'correct') or 0.7 k/n (verdict "
                          "'wrong'), k of n self-corrections guided by the critique being correct")
    refinements_per_critique: int = Field(1, ge=1, description="n of Eq. 4: self-corrections sampled per critique "
                                          "(the paper's experiments: 1)")
    critique_weight: float = Field(1.0, ge=0, description="scales critique advantages (1: the paper's plain mixed "
                                   "training; sigx's knob, not the paper's)")
    critique_max_tokens: int = Field(48, ge=1, description="tokens a critique may generate (reasoning + verdict)")


class SORLConfig(TechniqueConfig):
    """SORL (arXiv 2511.20718): turn-level IS ratio, per-turn trust region, clipping-triggered normalisation
    (whose exact form could not be read: sigx's 1 / (1 + alpha C_i), see sigx/techniques/sorl.py)."""

    clip_eps: float = Field(0.2, gt=0, description="band [1 - eps, 1 + eps_high] on each turn's ratio")
    clip_eps_high: float | None = Field(None, gt=0, description="defaults to clip_eps")
    clip_normalization: bool = Field(True, description="downweight samples whose turns were clipped")
    normalization_strength: float = Field(1.0, ge=0, description="alpha in 1 / (1 + alpha * C_i) (sigx's form)")


#: the recipe sections of techniques registered beyond the four built-in ones (``register_technique`` in
#: sigx.engine.hooks adds a technique's ``config_class`` here), by name, in registration order
TECHNIQUE_CONFIGS: dict[str, type[TechniqueConfig]] = {}


class TechniquesConfig(Strict):
    """One section per technique, in the order the GRPO loop meets them; a registered technique's section
    (TECHNIQUE_CONFIGS) is validated by its own config and present, off, when the recipe leaves it out."""

    model_config = ConfigDict(extra="allow")  # only registered sections: _registered_sections refuses the rest

    search_p1: SearchP1Config = Field(SearchP1Config(), description="Search-P1: path-centric reward")
    gcrl: GCRLConfig = Field(GCRLConfig(), description="GC-RL: second-order rollout (critiques)")
    sspo: SSPOConfig = Field(SSPOConfig(), description="SSPO: gated geometric-mean sequence weight")
    sorl: SORLConfig = Field(SORLConfig(), description="SORL: turn-level ratio and clipping-triggered normalisation")

    @model_validator(mode="before")
    @classmethod
    def _registered_sections(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, value in data.items():
            if name not in cls.model_fields and name not in TECHNIQUE_CONFIGS:
                raise ValidationError.from_exception_data(cls.__name__, [
                    {"type": "extra_forbidden", "loc": (name,), "input": value}])
        for name, config in TECHNIQUE_CONFIGS.items():
            value = data.get(name, {})
            if isinstance(value, config):
                continue
            try:
                data[name] = config.model_validate(value)
            except ValidationError as err:  # re-raised under the section's name, as a built-in section's would be
                raise ValidationError.from_exception_data(cls.__name__, [
                    {"type": e["type"], "loc": (name, *e["loc"]), "input": e["input"],
                     **({"ctx": e["ctx"]} if "ctx" in e else {})} for e in err.errors()]) from None
        return data

    def enabled_names(self) -> list[str]:
        return [name for name in technique_order() if getattr(getattr(self, name, None), "enabled", False)]


#: the built-in techniques' names, in the order the GRPO loop meets them (reward density, reward dimension, then
#: the ratio): written once, as the sections of TechniquesConfig
TECHNIQUE_ORDER: tuple[str, ...] = tuple(TechniquesConfig.model_fields)


def technique_order() -> tuple[str, ...]:
    """Every technique a recipe may name: the built-in ones, then the registered ones in registration order."""
    return TECHNIQUE_ORDER + tuple(TECHNIQUE_CONFIGS)


def register_technique_config(name: str, config: type[TechniqueConfig]) -> None:
    """Make a technique's recipe section (``techniques.<name>``) valid; a built-in section needs no registering."""
    if name in TECHNIQUE_ORDER:
        built_in = TechniquesConfig.model_fields[name].annotation
        if built_in is not config:
            raise ValueError(f"technique {name!r} is built in, with the section {built_in.__name__}")
        return
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"technique name {name!r}: lowercase letters, digits and _, starting with a letter")
    if not (isinstance(config, type) and issubclass(config, TechniqueConfig)):
        raise ValueError(f"technique {name!r}: its config_class must subclass sigx.config.TechniqueConfig")
    if TECHNIQUE_CONFIGS.get(name, config) is not config:
        raise ValueError(f"technique {name!r} already has a recipe section ({TECHNIQUE_CONFIGS[name].__name__})")
    TECHNIQUE_CONFIGS[name] = config


# --------------------------------------------------------------------------------------------------- ablation
def _known_technique(name: str) -> str:
    if name not in technique_order():
        shown = _shown(name, 40)
        raise ValueError(f"unknown technique {shown}; a factor is a technique ({', '.join(technique_order())}) or a "
                         "recipe field at two levels, e.g. {rollout.staleness: [0, 4]}")
    return name


TechniqueName = Annotated[str, AfterValidator(_known_technique)]


class FieldFactor(Strict):
    """A recipe field as a factor of the ablation, at two levels: the reference (coded -1, like a technique off)
    and the treatment (+1). Written ``{rollout.staleness: [0, 4]}`` or in full, with a role."""

    field: str = Field(description="dotted path of the recipe field, e.g. rollout.staleness or training.lr")
    levels: tuple[Any, Any] = Field(description="[reference, treatment]: the reference is the baseline cell's")
    role: Literal["regime", "control"] = Field(
        "regime", description="regime: crossed with every other factor, a condition the techniques are measured "
        "under (technique gaps are reported at each of its levels); control: a factor whose effect is known to be "
        "real, crossed with the baseline only (one extra cell per seed: every other factor at its reference), a "
        "positive control that shows the set-up detects an effect of its size")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, dict) and len(data) == 1 and "field" not in data:
            ((path, levels),) = data.items()
            return {"field": path, "levels": levels}
        return data

    @model_validator(mode="after")
    def _two_levels(self) -> "FieldFactor":
        if self.levels[0] == self.levels[1]:
            raise ValueError(f"{self.field}: the two levels must differ (got {list(self.levels)})")
        return self


#: characters a level may not carry into a cell's directory name: path separators, NUL and control characters,
#: and the escape character itself, each written %XX instead (so ``http://a/v1`` names one directory, never three)
_UNSAFE_IN_NAME = re.compile(r"[%/\\\x00-\x1f\x7f]")
#: the longest a level's label, and a cell's whole combination name, may be (one path component: 255 bytes)
MAX_LABEL = 100
MAX_COMBINATION = 240


def level_label(value: Any) -> str:
    """How a field factor's treatment level appears in a cell's name (``staleness=4``, ``lr=0.0001``): one path
    component whatever the value, so that no level can place a cell outside its store."""
    text = format(value, "g") if isinstance(value, float) else str(value).lower() if isinstance(value, bool) \
        else str(value)
    return _UNSAFE_IN_NAME.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), text)


def _factor_kind(value: Any) -> str:
    return "technique" if isinstance(value, str) else "field"


Factor = Annotated[Union[Annotated[TechniqueName, Tag("technique")], Annotated[FieldFactor, Tag("field")]],
                   Discriminator(_factor_kind)]


#: where an ablation's cells may run (``ablation.executor``): the built-in launchers' names, and those added by
#: ``register_launcher`` in sigx.ablation.launchers (through register_executor)
EXECUTORS: list[str] = ["local", "ray", "slurm"]


def register_executor(name: str) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name or ""):
        raise ValueError(f"launcher name {name!r}: lowercase letters, digits and _, starting with a letter")
    if name not in EXECUTORS:
        EXECUTORS.append(name)


def _known_executor(name: str) -> str:
    if name not in EXECUTORS:
        shown = _shown(name, 40)
        raise ValueError(f"unknown executor {shown}; allowed: {', '.join(EXECUTORS)}")
    return name


def _ray_address(value: str) -> str:
    """The forms ``ray.init`` connects to: auto, local, HOST:PORT (a cluster's GCS) or ray://HOST[:PORT] (Ray
    Client), HOST a name, IPv4 or [IPv6]: checked when the recipe is read, not when the first cell is submitted."""
    if value in ("auto", "local"):
        return value
    client = value.startswith("ray://")
    parts = urlsplit(value if client else f"//{value}")
    try:
        port = parts.port
    except ValueError:  # not a number, or beyond 65535
        port = 0
    if not parts.hostname or parts.path or parts.query or parts.fragment or parts.username or port == 0 \
            or (port is None and not client):
        shown = _shown(value, 60)
        raise ValueError(f"{shown} is not a Ray address; allowed: auto, local, HOST:PORT, ray://HOST[:PORT]")
    return value


class RayConfig(Strict):
    """``executor: ray``: each cell a Ray task."""

    address: Annotated[str, AfterValidator(_ray_address)] | None = Field(None, description="address of an existing cluster (default: RAY_ADDRESS's where set, else start a local one; 'auto': the cluster last started on this machine)")
    gpus_per_cell: float | None = Field(None, ge=0, description="num_gpus of a cell's task (default: 1 if the "
                                        "cluster has GPUs, else 0)")
    cpus_per_cell: float = Field(1.0, gt=0, description="num_cpus of a cell's task (and its torch threads)")
    nodes_per_cell: int = Field(1, ge=1, le=1024, description="nodes of each cell's run: a placement group of that "
                                "many bundles on distinct nodes (STRICT_SPREAD), each a node of `sigx train --nnodes` "
                                "with nproc_per_cell processes; the store must be on a filesystem the nodes share")


class SlurmConfig(Strict):
    """``executor: slurm``: each cell a Slurm job (one job array per invocation), submitted through submitit."""

    partition: str | None = Field(None, description="Slurm partition (default: the cluster's)")
    account: str | None = Field(None, description="Slurm account to charge")
    time_min: int = Field(240, ge=1, description="a job's time limit, minutes (a cell cut by it resumes from its "
                          "checkpoint when run again)")
    gpus_per_cell: int = Field(1, ge=0, description="GPUs per job")
    cpus_per_cell: int = Field(8, ge=1, description="CPUs per job (and its torch threads)")
    mem_gb: float | None = Field(None, gt=0, description="memory per job, GB (default: the partition's)")
    max_parallel: int = Field(64, ge=1, description="jobs of the array running at once")
    nodes_per_cell: int = Field(1, ge=1, le=1024, description="nodes of each cell's job, one task per node: the "
                                "cell's run on nodes_per_cell x nproc_per_cell processes (sigx train --nnodes); the "
                                "store must be on a filesystem the nodes share. local: that many tasks on this machine")
    sbatch: dict[str, str] = Field(default_factory=dict, description="more sbatch options, e.g. {constraint: a100}")
    local: bool = Field(False, description="run the jobs as local processes (submitit's LocalExecutor): for tests "
                        "and for trying a recipe without a cluster")


class AblationConfig(Strict):
    """What ``sigx ablate`` runs: the 2^k factorial (or a fraction of it) over ``factors`` x ``seeds``, and where
    and how.

    A factor is a technique (off / on) or a recipe field at two levels (``{rollout.staleness: [0, 4]}``), so
    technique x regime interactions are measurable. Techniques that are not factors keep the setting of the
    ``techniques`` section in every cell. ``factors`` and the rest of the recipe decide *what* is measured and
    must not change once a run store holds cells; ``seeds`` may grow, and ``fraction`` may change (lowered, the
    cells it left out run and the cells done are kept: a fold-over); ``executor``, ``workers``,
    ``ray`` and ``slurm`` decide only *where*, and may change between a crash
    and its resume.
    """

    factors: list[Factor] = Field(default_factory=lambda: ["search_p1", "gcrl", "sspo", "sorl"], min_length=1,
                                  description="techniques (by name) and/or recipe fields at two levels")
    fraction: int = Field(0, ge=0, description="p of a 2^(k-p) fractional design of resolution >= V (main effects "
                          "and 2-factor interactions unaliased) over the k crossed factors (controls are not "
                          "crossed); 0: the full factorial. Lowering it on a store runs only the cells "
                          "missing (a fold-over that de-aliases the interactions)", **role("execution"))
    seeds: list[Annotated[int, Field(ge=0, le=2**63 - 1, strict=True)]] = Field(  # strict: `true` is no seed
        default_factory=lambda: [0, 1, 2], min_length=1, description="the seeds every cell runs with (seed is a "
        "block in the analysis); more may be added to a store later", **role("execution"))
    metric: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", description="the metric the "
                               "analysis is declared on, before any run (a number a run's summary holds: final_reward, "
                               "reward_auc, ..., or one a technique on in some cell declares; `sigx ablate` and "
                               "`sigx validate` refuse any other): `sigx report` uses it, and says so in its first "
                               "line when asked for another. Unset: final_reward, reported as not declared")
    margin: float | None = Field(None, gt=0, le=1, description="the additivity / equivalence margin declared with "
                                 "the metric: a gap (or effect) shown within +-margin is negligible. Unset: 0.02, "
                                 "reported as not declared")
    output_dir: str = Field("ablations", min_length=1, max_length=4096,
                            description="run store root; the ablation goes to <output_dir>/<name>",
                            **role("execution"))
    executor: Annotated[str, AfterValidator(_known_executor)] = Field(
        "local", description="where cells run: local (this process, or `workers` processes), ray (a Ray "
        "cluster, see ray), slurm (Slurm jobs through submitit, see slurm)", **role("execution"))
    workers: int = Field(1, ge=1, description="local: cells run in parallel, one process (and one GPU, if any) "
                         "each", **role("execution"))
    nproc_per_cell: int = Field(1, ge=1, le=1024, description="processes of each cell's run (sigx train --nproc: "
                                "the update sharded with FSDP2, one GPU each); Ray and Slurm give a cell as many "
                                "GPUs", **role("layout"))
    ray: RayConfig = Field(RayConfig(), description="executor ray: the cluster and each task's resources",
                           **role("execution"))
    slurm: SlurmConfig = Field(SlurmConfig(), description="executor slurm: each cell's job", **role("execution"))

    @model_validator(mode="after")
    def _consistent(self) -> "AblationConfig":
        keys = [f if isinstance(f, str) else f.field for f in self.factors]
        for name, values in (("factors", keys), ("seeds", self.seeds)):
            if len(set(values)) != len(values):
                raise ValueError(f"{name} must not repeat a value (got {values})")
        crossed = [f for f in self.factors if isinstance(f, str) or f.role != "control"]
        if not crossed:
            raise ValueError("factors: a positive control needs at least one other factor to be compared with")
        make_design(len(crossed), self.fraction)  # DesignError (a ValueError) names the allowed fractions
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


MAX_SEED = 2**63 - 1  # torch.manual_seed's range


class Recipe(Strict):
    """A whole sigx run (or ablation): one YAML file, every section optional."""

    name: str = Field("sigx-run", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100,
                      description="names the run store and run directories: letters, digits, _ . -")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="the run's seed: every random stream derives from it",
                      **role("cell_seed"))
    model: ModelConfig = Field(ModelConfig(), description="the policy")
    task: TaskConfig = Field(ArithmeticTaskConfig(), description="prompts, environment and reward (by name: "
                             "one of the registered tasks)")
    rollout: RolloutConfig = Field(RolloutConfig(), description="how trajectories are sampled", **role("per_cell"))
    training: TrainingConfig = Field(TrainingConfig(), description="the GRPO update", **role("per_cell"))
    techniques: TechniquesConfig = Field(default_factory=TechniquesConfig, description="the four techniques (and any "
                                         "registered one), each off by default",
                                         **role("per_cell"))
    ablation: AblationConfig = Field(AblationConfig(), description="what `sigx ablate` runs, and where",
                                     **role("ablation_only"))
    logging: LoggingConfig = Field(LoggingConfig(), description="where runs are written and mirrored",
                                   **role("execution"))

    @model_validator(mode="before")
    @classmethod
    def _default_task_name(cls, data: Any) -> Any:
        # A task section without a name is the default task, as an absent section is.
        if isinstance(data, dict) and isinstance(data.get("task"), dict) and "name" not in data["task"]:
            data = {**data, "task": {"name": DEFAULT_TASK, **data["task"]}}
        return data

    @model_validator(mode="after")
    def _batch_splits(self) -> "Recipe":
        sequences = self.training.prompts_per_step * self.rollout.group_size
        if self.training.mini_batches > sequences:
            raise ValueError(
                f"training.mini_batches ({self.training.mini_batches}) exceeds the sequences per step "
                f"(training.prompts_per_step x rollout.group_size = {sequences})"
            )
        return self


def default_recipe_like(stored: dict) -> dict | None:
    """The default recipe (as plain data) for a stored recipe's task: what a field that an older sigx did not
    write stands for, when a run store or a checkpoint written by it is resumed (fields are added with defaults
    that keep the earlier behaviour)."""
    task = stored.get("task") if isinstance(stored, dict) else None
    name = task.get("name", DEFAULT_TASK) if isinstance(task, dict) else DEFAULT_TASK
    try:
        return Recipe.model_validate({"task": {"name": name}}).model_dump(mode="json")
    except ValidationError:  # a task that needs fields (search_qa): compare without defaults
        return None


def recipe_warnings(recipe: Recipe) -> list[str]:
    """Settings that are valid but probably not what the recipe's author meant: one line each."""
    out = []
    t, techniques = recipe.training, recipe.techniques
    if t.policy_loss == "gspo" and t.loss_aggregation == "token-mean" and not (techniques.sspo.enabled or
                                                                               techniques.sorl.enabled):
        out.append("training.policy_loss: gspo with loss_aggregation token-mean is not GSPO's objective, which "
                   "averages per sequence (arXiv 2507.18071 Eq. 5); set training.loss_aggregation: seq-mean")
    return out


# --------------------------------------------------------------------------------------------------- loading
def _field_path(loc: tuple) -> str:
    # Drop the discriminator tags pydantic inserts for unions ("ablation.factors.2.field.levels" ->
    # "ablation.factors.2.levels").
    parts = [str(p) for p in loc]
    if parts[:2] == ["ablation", "factors"] and len(parts) >= 4 and parts[3] in ("technique", "field"):
        parts = parts[:3] + parts[4:]
    return ".".join(parts) or "(recipe)"


def _allowed_keys(loc: tuple, data: dict) -> list[str]:
    """Names a section accepts, to turn 'extra field' errors into 'allowed: ...' hints."""
    model: Any = Recipe
    node: Any = data
    for part in loc[:-1]:
        if isinstance(node, dict):
            node = node.get(part, {})
        if model is TechniquesConfig and part in TECHNIQUE_CONFIGS:  # a registered technique's section
            model = TECHNIQUE_CONFIGS[part]
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        if part == "task":
            name = node.get("name", DEFAULT_TASK) if isinstance(node, dict) else DEFAULT_TASK
            ann = TASK_CONFIGS.get(name, TASK_CONFIGS[DEFAULT_TASK])
        model = ann
    return list(getattr(model, "model_fields", {})) + (list(TECHNIQUE_CONFIGS) if model is TechniquesConfig else [])


def format_validation_error(err: ValidationError, data: dict, source: str) -> list[str]:
    lines = []
    for e in err.errors():
        path = _field_path(e["loc"])
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(e["loc"], data)
            msg = "unknown field" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        elif e["msg"].removeprefix("Value error, ").startswith(FIELD_PROBLEM):
            field, msg = e["msg"].removeprefix("Value error, ").removeprefix(FIELD_PROBLEM).split(": ", 1)
            path = f"{path}.{field}" if path != "(recipe)" else field
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if "input" in e and e["type"] not in ("missing",) and not isinstance(e["input"], (dict, list)):
                shown = repr(e["input"])
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                if shown not in msg:  # the message names the value already
                    msg += f" (got {shown})"
        lines.append(f"{source}: {path}: {msg}")
    return lines


def parse_override(text: str) -> tuple[list[str], Any]:
    """``training.lr=1e-4`` -> (["training", "lr"], 1e-4); the value is parsed as YAML so types come out right."""
    if "=" not in text:
        raise RecipeError([f"--set {text}: expected KEY=VALUE, e.g. training.lr=1e-4"])
    key, raw = text.split("=", 1)
    if not key or any(not p for p in key.split(".")):
        raise RecipeError([f"--set {text}: malformed key {key!r}; use dotted paths like training.lr"])
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def _is_section(path: list[str]) -> bool:
    """Whether ``path`` names a recipe section (a model of fields), not a value."""
    model: Any = Recipe
    for part in path:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return False
        model = field.annotation
    return isinstance(model, type) and issubclass(model, BaseModel) or path == ["task"]


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise RecipeError([f"--set {text}: {part} is a value, not a section"])
            node = child
        if isinstance(value, dict) and (isinstance(node.get(path[-1]), dict) or _is_section(path)):
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise RecipeError([f"--set {shown}: would replace the whole section {'.'.join(path)}; set its fields one "
                               f"by one (--set {'.'.join(path)}.FIELD=VALUE)"])
        problem = _not_plain(value, ".".join(path))
        if problem:
            raise RecipeError([f"--set {'.'.join(path)}: {problem.split(': ', 1)[1]}"])
        node[path[-1]] = value
    return data


#: the sections a field factor may vary: the shared engine (model, task, rollout backend) serves every cell
FACTOR_SECTIONS = field_names_with_role(Recipe, "per_cell")
#: fields that change rounding and memory only (role "layout")
COMPUTE_LAYOUT_FIELDS = fields_with_role("layout")
#: fields a resumed run may change: where it logs, how long it runs, how often it checkpoints, the ablation's
#: settings and the update's layout in memory. Anything else would make the resumed run a different experiment
RESUMABLE_CHANGES = fields_with_role("layout") | fields_with_role("extent") | fields_with_role("execution") \
    | fields_with_role("ablation_only")
#: fields an ablation store may be resumed with changed (where and how its cells run, its seeds and fraction,
#: the update's layout), and the recipe's seed, which each cell replaces with its own
EXECUTION_FIELDS = fields_with_role("layout") | fields_with_role("execution") | fields_with_role("cell_seed")


def set_path(data: dict, path: list[str], value: Any) -> None:
    for part in path[:-1]:
        data = data.setdefault(part, {})
    data[path[-1]] = value


def field_factor_problems(recipe: Recipe, source: str) -> list[str]:
    """Each field factor names a field a cell may vary, and both its levels make a valid recipe."""
    base = recipe.model_dump(mode="json")
    del base["ablation"]  # its defaults: a trial recipe must not check its own factors again
    problems = []
    for i, factor in enumerate(recipe.ablation.factors):
        if isinstance(factor, str):
            continue
        where = f"{source}: ablation.factors.{i} ({factor.field})"
        path = factor.field.split(".")
        if path[0] not in FACTOR_SECTIONS or (path[0] == "rollout" and path[-1] in ENGINE_FIELDS):
            problems.append(f"{where}: a factor may vary {', '.join(FACTOR_SECTIONS)} fields, except the rollout "
                            f"engine's ({', '.join(ENGINE_FIELDS)}): one shared engine serves every "
                            "cell; run separate ablations for another model, task or backend and compare "
                            "them with `sigx compare A B`")
            continue
        if path[0] == "techniques" and path[-1] == "enabled":
            problems.append(f"{where}: write the technique's name ({path[1]}) as the factor")
            continue
        label = level_label(factor.levels[1])
        if len(label.encode()) > MAX_LABEL:
            problems.append(f"{where}: the treatment level names the cells' directories and is {len(label.encode())} "
                            f"bytes written as a name; at most {MAX_LABEL} allowed")
            continue
        found = []
        for level in factor.levels:
            trial = json.loads(json.dumps(base))
            set_path(trial, path, level)
            try:
                Recipe.model_validate(trial)
                found.append([])
            except ValidationError as err:
                found.append([line.removeprefix("trial: ") for line in format_validation_error(err, trial, "trial")])
        if found[0] and found[0] == found[1]:  # the field itself is wrong, whatever the level
            problems += [f"{where}: {line}" for line in found[0]]
        else:
            problems += [f"{where}: level {level!r}: {line}" for level, lines in zip(factor.levels, found)
                         for line in lines]
    return problems


def recipe_from_data(data: Any, source: str = "recipe", overrides: list[str] | None = None) -> Recipe:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError([f"{source}: the recipe must be a mapping of sections (model, task, training, ...)"])
    data = apply_overrides(data, overrides or [])
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as err:
        raise RecipeError(format_validation_error(err, data, source)) from None
    problems = field_factor_problems(recipe, source)
    if problems:
        raise RecipeError(problems)
    return recipe


#: a recipe whose YAML aliases would expand to more values than this is refused before it is expanded
MAX_RECIPE_VALUES = 100_000


class RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stricter: a key repeated in one mapping is an error (PyYAML keeps the last one
    silently), and so is a document whose aliases expand past MAX_RECIPE_VALUES (a few hundred bytes of nested
    aliases can expand to gigabytes: the recipe is copied as plain data)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def _expanded_size(node, memo: dict) -> int:
    """How many values ``node`` stands for once every alias is expanded (aliases share node objects)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = MAX_RECIPE_VALUES + 1  # a cycle counts as too large
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(n, memo) for n in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[id(node)] = min(size, MAX_RECIPE_VALUES + 1)
    return memo[id(node)]


def _not_plain(data: Any, where: str = "") -> str | None:
    """What in a recipe's data YAML made of something other than text, numbers, booleans, null, lists and
    mappings (a ``!!binary``, ``!!set`` or timestamp value), with its field path; None when it is all plain."""
    if isinstance(data, dict):
        for key, value in data.items():
            found = _not_plain(value, f"{where}.{key}" if where else str(key))
            if found:
                return found
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found = _not_plain(value, f"{where}.{i}")
            if found:
                return found
    elif data is not None and not isinstance(data, (str, int, float, bool)):
        kind = {bytes: "a !!binary value", set: "a !!set value"}.get(type(data), f"a {type(data).__name__} value "
                                                                                 "(quote it to use it as text)")
        return f"{where or '(recipe)'}: {kind}; a recipe holds text, numbers, booleans, lists and mappings"
    return None


def read_recipe_file(path: Path) -> Any:
    """The YAML data of a recipe file, or a one-line RecipeError naming the file (and line) and the problem."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecipeError([f"{path}: not UTF-8 text (byte {err.start}); save the recipe as UTF-8"]) from None
    except OSError as err:
        raise RecipeError([f"{path}: cannot read the recipe ({err.strerror})"]) from None
    if not text.strip() or all(line.lstrip().startswith("#") or not line.strip() for line in text.splitlines()):
        raise RecipeError([f"{path}: empty recipe; write at least the sections you change (see recipes/tiny.yaml)"])
    try:
        loader = RecipeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None and _expanded_size(node, {}) > MAX_RECIPE_VALUES:
                raise RecipeError([f"{path}: the recipe's YAML aliases expand to more than {MAX_RECIPE_VALUES} "
                                   "values; write it out without nested aliases"])
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
        problem = _not_plain(data)
        if problem:
            raise RecipeError([f"{path}: {problem}"])
        return data
    except RecursionError:
        raise RecipeError([f"{path}: the recipe's YAML is nested too deep to read; a recipe is a few levels of "
                           "sections"]) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        position = getattr(err, "position", None)  # a reader error (a character YAML forbids) has no mark
        where = (f": line {mark.line + 1}, column {mark.column + 1}" if mark
                 else f": character {position + 1}" if isinstance(position, int) else "")
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise RecipeError([f"{path}{where}: invalid YAML: {problem}"]) from None


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    path = Path(path)
    if path.is_dir():
        raise RecipeError([f"{path}: is a directory; name a recipe file (e.g. recipes/tiny.yaml)"])
    if not path.is_file():
        raise RecipeError([f"{path}: no such recipe file"])
    return recipe_from_data(read_recipe_file(path), str(path), overrides)
