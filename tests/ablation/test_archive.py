"""Archives: a store's finished cells carried to another machine, restored there, and only the rest run."""

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from ablation_fixtures import small_recipe, summaries, write_recipe
from sigx.ablation.archive import CELL_FILES, archive_store
from sigx.ablation.runner import run_ablation
from sigx.ablation.store import StoreError
from sigx.cli import app
from sigx.report.load import load_ablation
from sigx.runs import read_jsonl


def archived_files(archive: Path) -> set[str]:
    return {str(p.relative_to(archive)) for p in archive.rglob("*") if p.is_file()}


def test_an_archive_restored_on_another_machine_runs_only_the_cells_it_lacks(tmp_path, monkeypatch):
    # both sittings start in the same clock second, as they may on a fast machine (CI once met it by chance): the
    # session log must still hold two sittings (below)
    import sigx.ablation.runner as runner

    frozen = SimpleNamespace(time=lambda: 1_800_000_000.0, strftime=time.strftime, localtime=time.localtime)
    monkeypatch.setattr(runner, "time", frozen)
    first = run_ablation(small_recipe(tmp_path / "machine1"))
    store = Path(first.root)
    one = first.cells[0].id
    (store / one / "wandb").mkdir()
    (store / one / "wandb" / "run.wandb").write_bytes(b"x" * 100)  # a W&B folder: not a result, not archived
    archive = tmp_path / "repo" / "results" / "archive"
    outcome = archive_store(store, archive)
    assert sorted(outcome.archived) == sorted(c.id for c in first.cells) and not outcome.unchanged
    assert archived_files(archive) == {"recipe.yaml", "plan.json", "sessions.jsonl"} | {
        f"{c.id}/{name}" for c in first.cells for name in CELL_FILES}
    assert summaries(archive) == summaries(store)

    # the report reads the archive as it reads the store: the same runs, the same curves
    from_store, from_archive = load_ablation(store), load_ablation(archive)
    assert from_archive.runs.equals(from_store.runs)
    assert from_archive.curves.equals(from_store.curves)

    # machine 2: its store is gone; with one more seed, the four archived cells come back and four more run
    wider = small_recipe(tmp_path / "machine2", seeds=[0, 1])
    resumed = run_ablation(wider, restore_from=str(archive))
    assert resumed.count("done") == 8
    assert sorted(r["cell"] for r in resumed.results) == sorted(c.id for c in resumed.cells if c.seed == 1)
    restored = summaries(Path(resumed.root))
    assert {k: v for k, v in restored.items() if k.endswith("seed0")} == summaries(archive)
    assert not (Path(resumed.root) / ".staging").exists() or not any((Path(resumed.root) / ".staging").iterdir())

    # archiving again adds the new cells, keeps the old ones, and the session log holds both machines' sittings
    again = archive_store(resumed.root, archive)
    assert len(again.archived) == 4 and sorted(again.unchanged) == sorted(c.id for c in first.cells)
    assert len(json.loads((archive / "plan.json").read_text())["cells"]) == 8
    sessions = read_jsonl(archive / "sessions.jsonl")
    assert [s["event"] for s in sessions] == ["started", "finished"] * 2
    # each sitting's two lines share its id and the sittings' ids differ, so two sittings of one process in the
    # same second are two sittings in the merged log, not one (the archive's merge keeps each distinct line once)
    assert len({s["started"] for s in sessions}) == 1  # the same second throughout
    assert sessions[0]["session"] == sessions[1]["session"] != sessions[2]["session"] == sessions[3]["session"]
    assert archive_store(resumed.root, archive).archived == []  # nothing new: nothing written
    with open(Path(resumed.root) / "sessions.jsonl", "ab") as log:
        log.write(b'\xff\xfe not json\n{"event": "started", "torn')  # a damaged line and one still being written
    archive_store(resumed.root, archive)
    assert len(read_jsonl(archive / "sessions.jsonl")) == 4


def test_a_restore_refuses_another_experiment_and_a_cell_that_ran_another_recipe(tmp_path):
    store = Path(run_ablation(small_recipe(tmp_path / "m1")).root)
    archive = tmp_path / "archive"
    archive_store(store, archive)
    other = small_recipe(tmp_path / "m2")
    other.training.lr = 3e-4
    with pytest.raises(StoreError, match=r"archives another experiment \(its recipe differs in training\.lr\)"):
        run_ablation(other, restore_from=str(archive))

    cell = next(p.parent for p in archive.glob("*/seed0/config.json"))
    config = json.loads((cell / "config.json").read_text())
    config["rollout"]["temperature"] = 0.5  # a cell run by another recipe, put into the archive by hand
    (cell / "config.json").write_text(json.dumps(config))
    with pytest.raises(StoreError, match=r"ran another recipe than this cell's \(differs in rollout\.temperature\)"):
        run_ablation(small_recipe(tmp_path / "m3"), restore_from=str(archive))

    import shutil

    shutil.rmtree(cell)
    cell.write_text("not a cell")
    with pytest.raises(StoreError, match=r"seed0: not a directory \(an archived cell is one\)"):
        run_ablation(small_recipe(tmp_path / "m3b"), restore_from=str(archive))
    cell.unlink()
    archive_store(store, archive)  # put it back as it was archived
    (cell / "summary.json").write_text("{ torn")
    with pytest.raises(StoreError, match=r"has no readable summary\.json"):
        run_ablation(small_recipe(tmp_path / "m4"), restore_from=str(archive))
    with pytest.raises(StoreError, match=r"nothing: not a directory; name an archive"):
        run_ablation(small_recipe(tmp_path / "m5"), restore_from=str(tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match=r"not an archive \(no recipe\.yaml\)"):
        run_ablation(small_recipe(tmp_path / "m5"), restore_from=str(tmp_path / "empty"))
    with pytest.raises(StoreError, match=r"archives another experiment"):  # a dry run names it too, runs nothing
        run_ablation(other, restore_from=str(archive), dry_run=True)


def test_an_archive_never_takes_a_different_run_of_a_cell_it_holds(tmp_path):
    """Two finished runs of one cell differ: which is the result is not sigx's to pick, so archiving refuses. A
    failed copy gives way to its finished re-run and is kept under .failed/."""
    store = Path(run_ablation(small_recipe(tmp_path / "m1")).root)
    archive = tmp_path / "archive"
    archive_store(store, archive)
    cell = next(p.parent for p in store.glob("*/seed0/summary.json"))
    cell_id = str(cell.relative_to(store))
    kept = (archive / cell_id / "summary.json").read_text()

    summary = json.loads((cell / "summary.json").read_text())
    summary["final_reward"] = 0.123
    (cell / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(StoreError, match=r"holds another run of this cell"):
        archive_store(store, archive)
    assert (archive / cell_id / "summary.json").read_text() == kept

    failed = dict(json.loads(kept), status="failed", error="RuntimeError: boom")
    (archive / cell_id / "summary.json").write_text(json.dumps(failed))
    outcome = archive_store(store, archive)
    assert outcome.replaced == [cell_id] and outcome.archived == [cell_id]
    assert json.loads((archive / cell_id / "summary.json").read_text())["final_reward"] == 0.123
    assert [json.loads(p.read_text())["status"] for p in (archive / ".failed").glob("*/summary.json")] == ["failed"]


def test_an_archive_of_another_recipe_or_a_stray_directory_is_refused_and_leftovers_are_dropped(tmp_path):
    store = Path(run_ablation(small_recipe(tmp_path / "m1")).root)
    archive = tmp_path / "archive"
    (archive / ".staging" / "baseline__seed0.1.dead").mkdir(parents=True)  # a killed archiving's half-written cell
    (archive / "recipe.yaml").write_text((store / "recipe.yaml").read_text())
    archive_store(store, archive)
    assert not (archive / ".staging").exists()

    other = small_recipe(tmp_path / "m2")
    other.training.lr = 3e-4
    other_store = Path(run_ablation(other).root)
    with pytest.raises(StoreError, match=r"archives another experiment"):
        archive_store(other_store, archive)
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match=r"exists and is not an archive"):
        archive_store(store, stray)
    with pytest.raises(StoreError, match=r"not an ablation run store"):
        archive_store(tmp_path / "nowhere", tmp_path / "new")
    with pytest.raises(StoreError, match=r"is the store itself"):
        archive_store(store, store)
    with pytest.raises(StoreError, match=r"is inside the store"):
        archive_store(store, store / "archive")
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(StoreError, match=r"a-file: exists and is not a directory"):
        archive_store(store, tmp_path / "a-file")
    assert (tmp_path / "a-file").read_text() == "mine" and not (store / "archive").exists()

    import fcntl
    import os

    busy = os.open(archive, os.O_RDONLY)  # another archiving (a timer's) holds the archive
    fcntl.flock(busy, fcntl.LOCK_EX)
    try:
        with pytest.raises(StoreError, match=r"another sigx archive is writing it"):
            archive_store(store, archive)
    finally:
        os.close(busy)
    assert archive_store(store, archive).archived == []


def test_a_damaged_cell_is_left_out_by_name_and_never_followed_through_a_link(tmp_path):
    """An archive is committed: a cell file that is a link (here to a secret) or a directory is not copied, the
    cell is named, and the rest are archived; a failed run that died before writing its config is not damage."""
    store = Path(run_ablation(small_recipe(tmp_path / "m1")).root)
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    linked, gutted, failed = (store / cell for cell in ("baseline/seed0", "sspo/seed0", "sorl/seed0"))
    (linked / "config.json").unlink()
    (linked / "config.json").symlink_to(secret)
    (gutted / "metrics.jsonl").unlink()
    (gutted / "metrics.jsonl").mkdir()
    summary = json.loads((failed / "summary.json").read_text())
    (failed / "summary.json").write_text(json.dumps({**summary, "status": "failed", "error": "RuntimeError: boom"}))
    (failed / "config.json").unlink()
    (failed / "metrics.jsonl").unlink()
    result = CliRunner().invoke(app, ["archive", str(store), str(tmp_path / "archive")])
    assert result.exit_code == 0, result.output
    assert f"warning: {linked}: config.json is a link, not a plain file; not archived" in result.output
    assert f"warning: {gutted}: metrics.jsonl is a directory, not a plain file" in result.output
    assert "2 cell(s) archived now, 0 already there, 2 cell(s) left out (damaged" in result.output
    archive = tmp_path / "archive"
    assert not (archive / "baseline" / "seed0").exists() and not (archive / "sspo" / "seed0").exists()
    assert "password" not in "".join(p.read_text() for p in archive.rglob("*") if p.is_file())
    assert sorted(p.name for p in (archive / "sorl" / "seed0").iterdir()) == ["summary.json"]
    (archive / "sspo+sorl" / "seed0" / "config.json").unlink()
    (archive / "sspo+sorl" / "seed0" / "config.json").symlink_to(secret)  # committed by hand: restore refuses it
    import io

    from rich.console import Console

    planned = io.StringIO()  # the plan counts the cell restore would refuse, not the failed run it runs again
    run_ablation(small_recipe(tmp_path / "m2"), Console(file=planned, width=200), dry_run=True,
                 restore_from=str(archive))
    assert "holds 1 of the pending cells" in planned.getvalue() and planned.getvalue().count("in archive") == 1
    with pytest.raises(StoreError, match=r"config\.json is a link, not a plain file; restore it from version"):
        run_ablation(small_recipe(tmp_path / "m2"), restore_from=str(archive))
    (archive / "sspo+sorl" / "seed0").rename(tmp_path / "set-aside")
    resumed = run_ablation(small_recipe(tmp_path / "m3"), restore_from=str(archive))
    assert sorted(r["cell"] for r in resumed.results) == ["baseline/seed0", "sorl/seed0", "sspo+sorl/seed0",
                                                          "sspo/seed0"]  # the failed run without a config ran again


def test_cli_archive_then_restore(tmp_path):
    runner = CliRunner()
    recipe = write_recipe(tmp_path)
    # a path wider than a log file's 80 columns: each message naming it stays one line (found by grep)
    archive = tmp_path / ("archive-" + "x" * 80)
    first = runner.invoke(app, ["ablate", str(recipe)])
    assert first.exit_code == 0, first.output
    import re

    # not a terminal (a log file): one timestamped line per finished cell, without its numbers
    logged = re.findall(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC finished (\S+) \((\d)/4 cells finished; \d+ s\)$",
                        first.output, re.M)
    assert sorted(cell for cell, _ in logged) == ["baseline/seed0", "sorl/seed0", "sspo+sorl/seed0", "sspo/seed0"]
    assert [count for _, count in logged] == ["1", "2", "3", "4"]
    logged_plan = runner.invoke(app, ["ablate", str(recipe), "--dry-run"]).output
    assert logged_plan.count("│ done") == 4 and "held-out" not in logged_plan  # a log file keeps to counts
    import io

    from rich.console import Console

    from ablation_fixtures import small_recipe

    on_screen = io.StringIO()  # in a terminal, the table gives each done cell's held-out reward
    run_ablation(small_recipe(tmp_path), Console(file=on_screen, force_terminal=True, width=200), dry_run=True)
    assert on_screen.getvalue().count("held-out") == 4
    store = tmp_path / "ablations" / "abl-test"
    done = runner.invoke(app, ["archive", str(store), str(archive)])
    assert done.exit_code == 0 and "4 cell(s) archived now, 0 already there" in done.output
    bad = runner.invoke(app, ["archive", str(tmp_path / "nowhere"), str(archive)])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1 and "not an ablation run store" in bad.output
    import shutil

    shutil.rmtree(store)  # the machine is gone
    planned = runner.invoke(app, ["ablate", str(recipe), "--dry-run", "--restore-from", str(archive)])
    assert planned.exit_code == 0
    assert f"the archive {archive} holds 4 of the pending cells (restored, after checks, when run)\n" in planned.output
    assert planned.output.count("in archive") == 4  # the plan table says what the restore brings in
    assert not store.exists() or not any(store.glob("*/seed*"))  # a dry run restores nothing
    resumed = runner.invoke(app, ["ablate", str(recipe), "--restore-from", str(archive)])
    assert resumed.exit_code == 0, resumed.output
    assert f"restored 4 finished cell(s) from the archive {archive}\n" in resumed.output and "4/4 cells done" in resumed.output
    assert "0 run now" in resumed.output


def test_an_archive_wider_than_the_store_keeps_its_plan_and_recipe(tmp_path):
    """Restored into a store with fewer seeds (the recipe before a later look added seeds), the archive keeps
    the plan of every cell it holds, and the recipe that planned them."""
    wide = Path(run_ablation(small_recipe(tmp_path / "m1", seeds=[0, 1])).root)
    archive = tmp_path / "archive"
    archive_store(wide, archive)
    recipe_text = (archive / "recipe.yaml").read_text()
    narrow = run_ablation(small_recipe(tmp_path / "m2", seeds=[0]), restore_from=str(archive))
    assert narrow.results == [] and narrow.count("done") == 4
    assert archive_store(narrow.root, archive).archived == []
    assert len(json.loads((archive / "plan.json").read_text())["cells"]) == 8
    assert (archive / "recipe.yaml").read_text() == recipe_text
    assert load_ablation(archive).runs.status.tolist() == ["done"] * 8
