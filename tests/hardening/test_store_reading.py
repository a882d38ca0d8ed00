"""A run store with damaged or nonsensical files (issue #26, item 6): one line where nothing can be reported, and
otherwise a report that leaves the bad values out and says so in its notes, never a traceback or an inf."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hardening_fixtures import one_error_line, store, tiny_data
from sigx.cli import app


def report(root: Path, tmp_path: Path):
    return CliRunner().invoke(app, ["report", str(root), "--out", str(tmp_path / "out"), "--format", "json"])


@pytest.mark.parametrize("contents", [b"ablation: {factors: [sspo\n", "name: caf\xe9\n".encode("latin-1"),
                                      b"- a list\n", b"[" * 5000 + b"]" * 5000])
def test_a_damaged_recipe_in_a_store_is_one_line_for_report_and_ablate(contents, tmp_path, cwd):
    root = store(tmp_path / "ablations" / "hard")
    (root / "recipe.yaml").write_bytes(contents)
    line = one_error_line(report(root, tmp_path))
    assert f"{root / 'recipe.yaml'}: not a" in line
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_data(tmp_path)))
    line = one_error_line(CliRunner().invoke(app, ["ablate", str(recipe)]))
    assert f"{root / 'recipe.yaml'}: not a" in line and "restore it, or start another store" in line


def test_a_plan_that_lists_one_run_four_times_is_refused(tmp_path, cwd):
    cell = {"id": "baseline/seed0", "combination": "baseline", "factors_on": [], "techniques": [], "seed": 0}
    root = store(tmp_path / "abl", plan_cells=[cell] * 4)
    assert "cell 'baseline/seed0' is listed 4 times" in one_error_line(report(root, tmp_path))


def test_a_seed_of_true_is_not_a_number(tmp_path, cwd):
    cell = {"id": "baseline/seed0", "combination": "baseline", "factors_on": [], "techniques": [], "seed": True}
    root = store(tmp_path / "abl", plan_cells=[cell])
    assert "cells[0] lacks an id, combination, seed" in one_error_line(report(root, tmp_path))


@pytest.mark.parametrize("value, shown", [("Infinity", "inf"), ("NaN", "nan"), ("true", "True"), ("1e308", "1e+308")])
def test_a_metric_that_is_not_a_finite_number_is_left_out_with_a_note(value, shown, tmp_path, cwd):
    bad = f'{{"status": "completed", "final_reward": {value}, "reward_auc": 0.4}}'.encode()
    root = store(tmp_path / "abl", summaries={"sspo/seed1": bad})
    result = report(root, tmp_path)
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "out" / "abl" / "report.json").read_text())
    assert f"store damage: sspo/seed1/summary.json: final_reward is {shown}, not a finite number: left out" in \
        written["notes"]
    assert "Infinity" not in json.dumps(written["cells"]) and "inf" not in json.dumps(written["cells"])


def test_binary_and_unreadable_files_are_read_around_and_noted(tmp_path, cwd):
    root = store(tmp_path / "abl", summaries={"baseline/seed1": b"\xff\xfe not json"},
                 metrics={"sspo/seed0": b"\x00\xff\xfe\x80garbage\n{\"step\": 0, \"eval/reward\": 0.5}\n[1]\n"})
    result = report(root, tmp_path)
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    notes = json.loads((tmp_path / "out" / "abl" / "report.json").read_text())["notes"]
    assert "store damage: baseline/seed1/summary.json is unreadable (not UTF-8 JSON): the run counts as missing" in notes
    assert ("store damage: sspo/seed0/metrics.jsonl: 2 line(s) unreadable or not a step's metrics, left out of its "
            "curve and room") in notes


def test_any_numeric_summary_key_is_a_metric_and_an_unknown_one_lists_them(tmp_path, cwd):
    summaries = {f"{c}/seed{s}": {"status": "completed", "final_reward": 0.5, "reward_auc": 0.4,
                                  "my_gate_mean": 0.1 * s + (0.2 if c == "sspo" else 0.0)}
                 for c in ("baseline", "sspo") for s in (0, 1)}
    root = store(tmp_path / "abl", summaries={k: json.dumps(v).encode() for k, v in summaries.items()})
    ok = CliRunner().invoke(app, ["report", str(root), "--out", str(tmp_path / "out"), "--format", "json",
                                  "--metric", "my_gate_mean"])
    assert ok.exit_code == 0, ok.output
    written = json.loads((tmp_path / "out" / "abl" / "report.json").read_text())
    (effect,) = [e for e in written["effects"] if e["term"] == "sspo"]
    assert abs(effect["effect"] - 0.2) < 1e-9
    line = one_error_line(CliRunner().invoke(app, ["report", str(root), "--out", str(tmp_path / "o2"),
                                                   "--metric", "nope"]))
    assert "--metric: 'nope' is no numeric summary key of abl's runs; allowed:" in line and "my_gate_mean" in line



def test_a_damaged_sequential_plan_is_one_line_for_report(tmp_path, cwd):
    """sequential.json sets the level of every test; a look whose seed count is an object made the report's
    arithmetic raise a TypeError: now one line names the field."""
    root = store(tmp_path / "abl")
    (root / "sequential.json").write_text(json.dumps({"first_seeds": [0, 1], "step": 2, "max_seeds": 4,
                                                      "looks_done": [{"look": 1, "seeds": {"a": 1}}]}))
    line = one_error_line(report(root, tmp_path))
    assert f"{root / 'sequential.json'}: not a sigx sequential plan (looks_done.0.seeds: Input should be a valid " \
        "integer); restore it from the archive or version control" in line, line

HOSTILE = [None, True, False, 0, -1, 1e308, "x", "", [], {}, [1, 2], {"a": 1}, "../../etc", "baseline/seed0", 2**70,
           "NaN", "\x00", ["sspo"], 3.5]


def hostile_edit(tree, rng):
    """``tree`` (parsed JSON) with one node, picked at random, replaced by a hostile value or deleted."""
    import copy

    nodes = []

    def walk(node, path):
        nodes.append(path)
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            walk(child, path + [key])

    walk(tree, [])
    if len(nodes) == 1:
        return copy.deepcopy(rng.choice(HOSTILE))
    path = rng.choice(nodes[1:])
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    if rng.random() < 0.2:
        del parent[path[-1]]
    else:
        parent[path[-1]] = copy.deepcopy(rng.choice(HOSTILE))
    return tree


@pytest.mark.parametrize("seed", range(3))
def test_random_damage_to_any_store_file_is_never_a_traceback(seed, tmp_path, cwd):
    """Random structural damage (a node of plan.json, a summary or a metrics line set to a value of the wrong type,
    or deleted), 8 cases a seed: `sigx report` and `sigx archive` end with a report or one error line, never a
    traceback. Fuzzing this way (470 cases, with `sigx compare` and `ablate --restore-from` too) found no crash;
    this keeps it so."""
    import random
    import shutil

    rng = random.Random(seed)
    for case in range(8):
        shutil.rmtree(tmp_path / "case", ignore_errors=True)
        root = store(tmp_path / "case" / "abl", seeds=(0, 1, 2))
        run = root / rng.choice(["baseline", "sspo"]) / f"seed{rng.randrange(3)}"
        damaged = rng.choice([root / "plan.json", run / "summary.json", run / "metrics.jsonl"])
        if damaged.suffix == ".jsonl":
            rows = [hostile_edit(json.loads(line), rng) for line in damaged.read_text().splitlines()]
            damaged.write_text("".join(json.dumps(row) + "\n" for row in rows))
        else:
            tree = json.loads(damaged.read_text())
            for _ in range(rng.randint(1, 3)):
                tree = hostile_edit(tree, rng)
            damaged.write_text(json.dumps(tree))
        for args in (["report", str(root), "--out", str(tmp_path / "case" / "out"), "--format", "json"],
                     ["archive", str(root), str(tmp_path / "case" / "archive")]):
            result = CliRunner().invoke(app, args)
            crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
            assert not crashed and "Traceback" not in result.output, (case, damaged.read_text(), result.output)
            if result.exit_code:
                one_error_line(result)
