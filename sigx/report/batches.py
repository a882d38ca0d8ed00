"""Where the runs of a report came from: the base model they started from, the batches (code, libraries, kind of
machine) that made them, and whether a batch difference could be inside an effect. A store filled over several
sittings or machines carries these; the report says so beside its effects rather than assuming one batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm

from sigx.report.load import Ablation
from sigx.report.stats import Model, model_rows


def warm_start_line(ab: Ablation) -> str:
    """The base model the runs started from (the tiny model's cache key is the hash of everything its warm start
    depends on): a conclusion is about that base model; one of another warm start may differ."""
    done = ab.done.dropna(subset=["warm_start"]) if "warm_start" in ab.runs else ab.done.iloc[:0]
    if not len(done):
        return "warm start: not recorded"
    builds = done.get("base_weights", pd.Series(None, index=done.index)).astype(object)
    counts = pd.DataFrame({"key": done.warm_start.astype(str), "build": builds.where(builds.notna(), "")}
                          ).value_counts(sort=True)
    line = "warm start: " + "; ".join(f"{key}{f' (weights {build})' if build else ''} ({n} run{'s' if n > 1 else ''})"
                                      for (key, build), n in counts.items())
    keys = pd.Series([key for key, build in counts.index if build], dtype=str)
    rebuilt = sorted(set(keys[keys.duplicated()]))
    if rebuilt:  # one cache key, two builds: never a design's choice (a factor varies the key, not the build)
        line += (f". {', '.join(rebuilt)}: built with different weights on different machines (their CPU kernels "
                 "differ): these runs did not all start from one base model, and a difference between the builds "
                 "is read as part of the effects")
    return line


def batch_lines(ab: Ablation, metric: str, model: Model) -> list[str]:
    """Which runs came from which batch (code and libraries), and what a batch difference would do to the
    analysis: a store filled in several batches (a fold-over, added seeds, another machine) may carry a batch
    effect. Aliased with a model term (a fold-over's batch is its defining interaction; added seeds' batch is
    their seed blocks), its effect is inside that term's estimate; otherwise it is estimated and tested, with the
    standard error and df of the verdicts (``Model.estimate``: HC2, Bell-McCaffrey), since a batch that cuts across
    the design weighs its runs unequally, the case where the pooled variance loses its level."""
    if "batch" not in ab.runs:
        return []
    data = model_rows(ab, metric)
    if not len(data):
        return []
    labels = ab.done.loc[data.index, "batch"].fillna("not recorded").astype(str)
    counts = labels.value_counts(sort=False)
    lines = [f"{label}: {n} run(s)" for label, n in counts.items()]
    if len(counts) == 1:
        return [f"one batch: {lines[0]}"] + threads_line(ab)
    if model.fit is None:
        return ["batches: " + "; ".join(lines) + " (no model to test a batch effect)"]
    exog = model.fit.model.exog
    names = model.names
    order = list(counts.index)
    found = []
    for label in order[1:]:
        column = (labels.to_numpy() == label).astype(float)
        gamma, *_ = np.linalg.lstsq(exog, column, rcond=None)
        if np.allclose(exog @ gamma, column, atol=1e-8):
            terms = [n for n, g in zip(names, gamma) if abs(g) > 1e-8 and n != "const"]
            found.append(f"batch '{label}' vs '{order[0]}' is aliased with {', '.join(terms) or 'the intercept'}: "
                         "any difference between the batches is inside those estimates and cannot be told apart")
            continue
        shifted = Model(sm.OLS(model.fit.model.endog, np.column_stack([exog, column])).fit(), model.factors,
                        model.terms, model.blocked, controls=model.controls, names=names + [f"batch[{label}]"])
        shift = shifted.estimate(np.eye(exog.shape[1] + 1)[-1])  # HC2, as the verdicts: a batch weighs runs unequally
        found.append(f"batch '{label}' vs '{order[0]}': {shift['value']:+.4f} [{shift['low']:+.4f}, "
                     f"{shift['high']:+.4f}], p {shift['p']:.3g} (a level shift estimated beside the model's terms)")
    return ["batches: " + "; ".join(lines)] + found + threads_line(ab)


def threads_line(ab: Ablation) -> list[str]:
    if "threads" not in ab.runs or ab.done.threads.isna().all():
        return []
    counts = ab.done.threads.dropna().astype(int).value_counts().sort_index()
    return ["torch threads per run: " + ", ".join(f"{t} ({n} run(s))" for t, n in counts.items())]
