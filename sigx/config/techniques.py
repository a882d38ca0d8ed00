"""The technique sections: one per technique (the knobs; the formulas live in sigx/techniques/), and the
registry of sections added by ``register_technique``."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, ValidationError, model_validator

from sigx.config.base import Strict, http_url


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

    base_url: Annotated[str, AfterValidator(http_url)] = Field("http://localhost:8000/v1",
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
