"""The report's PNGs (matplotlib, no display needed)."""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sigx.report.metrics import metric_description  # noqa: E402
from sigx.report.build import Report  # noqa: E402


def _save(fig, path: Path) -> None:
    """Atomically: a reader (or a crash) never sees half a PNG."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        plt.close(fig)


def reward_curves(report: Report, path: Path) -> None:
    """Held-out reward over training, mean over seeds, one line per cell; baseline and all-on stand out."""
    curves = report.ablation.curves
    all_on = report.ablation.combination(set(report.ablation.factors))
    fig, ax = plt.subplots(figsize=(8, 5))
    if len(curves):
        means = curves.groupby(["combination", "step"])["reward"].mean().reset_index()
        combos = list(dict.fromkeys(report.ablation.runs.combination))
        colours = plt.cm.viridis(np.linspace(0, 0.9, len(combos)))
        for combo, colour in zip(combos, colours):
            line = means[means.combination == combo]
            if not len(line):
                continue
            style = dict(color=colour, lw=1, alpha=0.6)
            if combo == report.ablation.combination(set()):
                style = dict(color="black", lw=2.2, ls="--")
            elif combo == all_on:
                style = dict(color="crimson", lw=2.2)
            ax.plot(line.step, line.reward, label=combo, **style)
        ax.legend(fontsize=6, ncol=2, loc="lower right")
    ax.set(xlabel="step", ylabel="held-out reward (mean over seeds)",
           title=f"{report.ablation.name}: held-out reward per cell")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def effects_plot(report: Report, path: Path) -> None:
    """Every factorial effect with its 95% CI; main effects first."""
    table = report.effects.table
    fig, ax = plt.subplots(figsize=(7, 0.35 * max(len(table), 4) + 1))
    y = np.arange(len(table))[::-1]
    err = None
    if table["se"].notna().any():
        err = np.vstack([table.effect - table.ci_low, table.ci_high - table.effect])
    colours = ["tab:blue" if o == 1 else "tab:orange" for o in table.order]
    ax.barh(y, table.effect, xerr=err, color=colours, capsize=3)
    ax.set_yticks(y, table.term, fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set(xlabel=f"effect on {report.metric} (on - off), 95% CI",
           title=f"{report.ablation.name}: main effects (blue) and interactions (orange)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def interaction_heatmap(report: Report, path: Path) -> None:
    """k x k: the 2-way interaction effects off the diagonal, main effects on it; Holm p-values annotated."""
    factors = report.ablation.of_role("technique", "regime")  # the crossed factors (controls are not)
    table = report.effects.table.set_index("term")
    k = len(factors)
    grid = np.full((k, k), np.nan)
    labels = [["" for _ in range(k)] for _ in range(k)]
    for i, a in enumerate(factors):
        for j, b in enumerate(factors):
            term = a if i == j else " x ".join(t for t in factors if t in (a, b))  # the model's term order
            if term in table.index:
                value, p = table.loc[term, "effect"], table.loc[term, "p_holm"]
                grid[i, j] = value
                labels[i][j] = f"{value:+.3f}" + ("" if np.isnan(p) else f"\np={p:.2g}")
    fig, ax = plt.subplots(figsize=(1.5 * k + 2, 1.3 * k + 1.5))
    bound = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1.0
    image = ax.imshow(grid, cmap="RdBu", vmin=-bound or -1, vmax=bound or 1)
    for i, j in itertools.product(range(k), range(k)):
        ax.text(j, i, labels[i][j], ha="center", va="center", fontsize=8)
    ax.set_xticks(range(k), factors, rotation=30)
    ax.set_yticks(range(k), factors)
    ax.set_title(f"2-way interactions on {report.metric}\n(diagonal: main effects; p Holm-corrected)", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    _save(fig, path)


def _level(report: Report, factor: str, level: int) -> str:
    info = report.ablation.info[factor]
    if info.kind == "technique":
        return f"{factor} {'on' if level else 'off'}"
    return f"{factor}={info.levels[level]}"


def interaction_plots(report: Report, path: Path) -> None:
    """For each pair (A, B): the metric with A off/on, one line for B off and one for B on, averaged over the
    other factors. Parallel lines = no interaction."""
    done = report.ablation.done
    pairs = list(itertools.combinations(report.ablation.of_role("technique", "regime"), 2))
    cols = min(3, max(1, len(pairs)))
    rows = max(1, -(-len(pairs) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax, (a, b) in zip(axes.flat, pairs):
        for level, colour in [(0, "tab:gray"), (1, "tab:green")]:
            means = [done[(done[a] == x) & (done[b] == level)][report.metric].mean() for x in (0, 1)]
            ax.plot([0, 1], means, marker="o", color=colour, label=_level(report, b, level))
        ax.set_xticks([0, 1], [_level(report, a, 0), _level(report, a, 1)], fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    fig.suptitle(f"interaction plots: {metric_description(report.metric)}", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


DRAWERS = {"reward_curves.png": reward_curves, "effects.png": effects_plot,
           "interactions_heatmap.png": interaction_heatmap, "interaction_plots.png": interaction_plots}
PLOT_FILES = tuple(DRAWERS)  # every plot a report may write


def write_plots(report: Report, out: Path) -> list[Path]:
    names = ["reward_curves.png"] if len(report.ablation.curves) else []  # archives have none
    names += ["effects.png"]
    if len(report.ablation.of_role("technique", "regime")) >= 2:
        names += ["interactions_heatmap.png", "interaction_plots.png"]
    for name in names:
        DRAWERS[name](report, out / name)
    return [out / name for name in names]
