"""What every recipe section shares: the error type, the strict base model, the field roles, and the
checks of values that several sections hold (an http(s) URL, a value quoted for an error line)."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, model_validator


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


def quoted(value, width: int) -> str:
    """A value quoted for an error line, cut to ``width`` characters (a hostile recipe's long value stays one line)."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


class Names(list):
    """The names a recipe field may hold where a registry holds the things named (policy losses, advantage
    estimators, rollout backends, launchers): the built-in names from the start, so a recipe is checked without
    importing the engine, and each name a plug-in registers, so that a recipe naming a registered one is as valid
    as a built-in one. The field's annotation is ``names.field`` (a str checked against the list when the recipe is
    read); the recipe reference lists the names from it."""

    def __init__(self, what: str, built_in: list[str]):
        super().__init__(built_in)
        self.what = what

    def register(self, name: str) -> None:
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_+-]*", name):
            raise ValueError(f"{self.what} name {name!r}: lowercase letters, digits, _, + and -, starting with a "
                             "letter")
        if name not in self:
            self.append(name)

    def check(self, value: str) -> str:
        if value not in self:
            raise ValueError(f"unknown {self.what} {quoted(value, 40)}; allowed: {', '.join(self)}")
        return value

    @property
    def field(self) -> Any:
        return Annotated[str, AfterValidator(self.check)]


def names_of(field_info) -> Names | None:
    """The Names a pydantic field's value is checked against, if any (for the recipe reference)."""
    for meta in getattr(field_info, "metadata", ()):
        names = getattr(getattr(meta, "func", None), "__self__", None)
        if isinstance(names, Names):
            return names
    return None


def http_url(value: str) -> str:
    """An http(s) URL with a host: a server's address checked when the recipe is read, not at the first search."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = quoted(value, 60)
        raise ValueError(f"{shown} is not an http(s) URL with a host (http://HOST[:PORT]/PATH)")
    return value
