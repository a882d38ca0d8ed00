"""Recipe and command-line edges (issue #26, item 7): each one error line naming the file or field and what is
allowed; nothing written."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hardening_fixtures import one_error_line, tiny_data
from sigx.cli import MAX_ERROR_LINE, app
from sigx.runs import list_differences

RECIPES = [
    ("deep.yaml", "a: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested too deep to read"),
    ("binary.yaml", "name: !!binary aGVsbG8=\n", "name: a !!binary value; a recipe holds text"),
    ("set.yaml", "logging: {project: !!set {a, b}}\n", "logging.project: a !!set value"),
    ("date.yaml", "logging: {project: 2026-11-30}\n", "logging.project: a date value (quote it to use it as text)"),
    ("nul.yaml", 'logging: {output_dir: "runs\\0x"}\n', "logging.output_dir: contains a NUL byte"),
    ("nul-store.yaml", 'ablation: {output_dir: "a\\0"}\n', "ablation.output_dir: contains a NUL byte"),
    ("empty-dir.yaml", 'logging: {output_dir: ""}\n', "logging.output_dir: String should have at least 1 character"),
    ("steps.yaml", f"training: {{steps: {10**30}}}\n", "training.steps: 100000000000... is beyond a 64-bit integer"),
    ("steps-big.yaml", f"training: {{steps: {10**12}}}\n", "training.steps: Input should be less than or equal to"),
    ("tokens.yaml", f"rollout: {{max_new_tokens: {10**12}}}\n",
     "rollout.max_new_tokens: Input should be less than or equal to 1048576"),
    ("long-name.yaml", "model: {name: " + "m" * 20_000_000 + "}\n", "model.name: 20000000 characters; at most 10000"),
    ("long-path.yaml", "model: {name: " + "m" * 5000 + "}\n", "model.name: String should have at most 4096"),
]


@pytest.mark.parametrize("name, text, expected", RECIPES, ids=[r[0] for r in RECIPES])
def test_a_recipe_edge_is_one_short_line(name, text, expected, tmp_path, cwd):
    path = tmp_path / name
    path.write_text(text)
    line = one_error_line(CliRunner().invoke(app, ["validate", str(path)]))
    assert str(path) in line and expected in line and len(line) <= MAX_ERROR_LINE + 20, line[:300]


def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_data(tmp_path)))
    return path


@pytest.mark.parametrize("override, expected", [
    ("training={}", "--set training={}: would replace the whole section training; set its fields one by one"),
    ("techniques.sspo={enabled: true}", "would replace the whole section techniques.sspo"),
    ("logging.project=!!binary aGk=", "--set logging.project: a !!binary value"),
])
def test_a_set_that_would_reset_a_section_or_is_not_plain_is_one_line(override, expected, tmp_path, cwd):
    line = one_error_line(CliRunner().invoke(app, ["validate", str(recipe(tmp_path)), "--set", override]))
    assert expected in line, line


def test_a_run_dir_too_long_for_the_file_system_is_one_line(tmp_path, cwd):
    too_long = tmp_path / ("d" * 5000)
    line = one_error_line(CliRunner().invoke(app, ["train", str(recipe(tmp_path)), "--run-dir", str(too_long)]))
    assert "File name too long" in line and len(line) <= MAX_ERROR_LINE + 20, line[:300]


def test_a_difference_at_the_top_names_the_whole_recipe():
    assert list_differences([""]) == "(the whole recipe: not a mapping of sections)"


def test_an_error_line_never_echoes_megabytes(capsys):
    import typer

    from sigx.cli import fail

    with pytest.raises(typer.Exit):
        fail("model.name: cannot load " + "y" * 5_000_000 + " [from the hub]")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: model.name: cannot load yyy") and line.endswith("yyy [from the hub]")
    assert len(line) <= MAX_ERROR_LINE + 20 and "characters]..." in line
