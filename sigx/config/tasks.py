"""The task sections: the built-in tasks' and the registry that makes a task added from a user's module
as valid as a built-in one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from sigx.config.base import FIELD_PROBLEM, Strict, http_url, quoted, role


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
    url: Annotated[str, AfterValidator(http_url)] | None = Field(
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
        shown = quoted(name, 40)
        raise ValueError(f"unknown task {shown}; allowed: {', '.join(TASK_CONFIGS)}")
    return TASK_CONFIGS[name].model_validate(value)


#: a recipe's task section: one of TASK_CONFIGS, chosen by its name when the recipe is validated
TaskConfig = Annotated[Any, BeforeValidator(_task_section)]
