"""An ablation never writes outside its store, whatever a field factor's level holds (issue #26, item 1)."""

from pathlib import Path

import yaml
from typer.testing import CliRunner

from hardening_fixtures import one_error_line, tiny_data
from sigx.cli import app

URL = "techniques.search_p1.llm_judge.base_url"
MODEL = "techniques.search_p1.llm_judge.model"  # any text (a URL level must be a URL)


def recipe_file(tmp_path: Path, levels: list, field: str = URL) -> Path:
    path = tmp_path / "r.yaml"
    data = tiny_data(tmp_path, ablation={"factors": ["sspo", {field: levels}]})
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_level_that_climbs_out_of_the_store_names_one_directory_inside_it(tmp_path, cwd):
    recipe = recipe_file(tmp_path, ["Qwen/Qwen3-32B", "../../../../escaped"], MODEL)
    runner = CliRunner()
    done = runner.invoke(app, ["ablate", str(recipe)])
    assert done.exit_code == 0, done.output
    store = tmp_path / "ablations" / "hard"
    cells = sorted(p.relative_to(store).as_posix() for p in store.glob("*/seed0"))
    assert cells == ["baseline/seed0", "model=..%2F..%2F..%2F..%2Fescaped/seed0",
                     "sspo+model=..%2F..%2F..%2F..%2Fescaped/seed0", "sspo/seed0"]
    assert not list(tmp_path.rglob("escaped")) and not (Path("/") / "escaped").exists()
    reported = runner.invoke(app, ["report", str(store), "--out", str(tmp_path / "results")])
    assert reported.exit_code == 0, reported.output


def test_a_url_level_is_one_directory_and_the_store_reports(tmp_path, cwd):
    from sigx.ablation.plan import expand
    from sigx.config import load_recipe

    cells = expand(load_recipe(recipe_file(tmp_path, ["http://a/v1", "http://b/v1"])))
    assert [c.id for c in cells] == ["baseline/seed0", "sspo/seed0", "base_url=http:%2F%2Fb%2Fv1/seed0",
                                     "sspo+base_url=http:%2F%2Fb%2Fv1/seed0"]


def test_a_level_too_long_to_name_a_directory_is_refused_by_validate(tmp_path, cwd):
    recipe = recipe_file(tmp_path, ["http://a/v1", "http://" + "b" * 300])
    line = one_error_line(CliRunner().invoke(app, ["validate", str(recipe)]))
    assert "ablation.factors.1" in line and "at most 100 allowed" in line and len(line) < 300, line


def test_a_url_level_that_is_no_url_is_refused_before_any_cell(tmp_path, cwd):
    recipe = recipe_file(tmp_path, ["http://a/v1", "../../../../escaped"])
    line = one_error_line(CliRunner().invoke(app, ["ablate", str(recipe)]))
    assert "base_url" in line and "'../../../../escaped' is not an http(s) URL with a host" in line, line
    assert not (tmp_path / "ablations").exists()
