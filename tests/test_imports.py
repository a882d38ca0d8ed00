"""The shape of the house (../shared/STYLE.md): dependencies point one way. No import cycle among sigx's
modules (late, function-level imports included), and the engine never imports a technique, a judge or
anything above it (the CLI, runs, ablations, reports)."""

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent / "sigx"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """sigx modules ``name`` imports anywhere in its body (``from pkg import sub`` counts as pkg.sub when sub is
    a module, else as pkg)."""
    tree = ast.parse(MODULES[name].read_text())
    package = name if MODULES[name].name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def test_there_is_no_import_cycle():
    try:
        list(graphlib.TopologicalSorter(GRAPH).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")


@pytest.mark.parametrize("forbidden", ["sigx.techniques", "sigx.judges", "sigx.ablation", "sigx.report", "sigx.cli",
                                       "sigx.train"])
def test_the_engine_never_imports_upwards(forbidden):
    offenders = {m: sorted(i for i in deps if i == forbidden or i.startswith(forbidden + "."))
                 for m, deps in GRAPH.items() if m.startswith("sigx.engine")}
    assert not {m: d for m, d in offenders.items() if d}


def test_techniques_never_import_each_other_except_the_composition():
    techniques = {m for m in MODULES if m.startswith("sigx.techniques.")}
    for module in techniques - {"sigx.techniques.sorl_sspo"}:
        assert not GRAPH[module] & techniques, (module, GRAPH[module] & techniques)


def test_the_graph_sees_late_imports():  # the test would be hollow if function-level imports were missed
    assert "sigx.engine.vllm_backend" in GRAPH["sigx.engine.backends"]


def test_the_config_imports_nothing_above_it():
    """The recipe is the ground floor: every other floor reads it, it reads none of them (the factorial
    design's arithmetic it validates fractions with is a floor of its own, sigx.design)."""
    above = ("sigx.ablation", "sigx.engine", "sigx.report", "sigx.techniques", "sigx.tasks", "sigx.cli")
    assert not [m for m in GRAPH["sigx.config"] if m.startswith(above)]


def test_the_report_loads_no_torch():
    """`sigx report` reads JSON and fits OLS: loading torch and transformers made it start ~3x slower
    (bench/report_startup.py: 9.8 s -> 3.4 s under load on this project's 2-core machine)."""
    import subprocess
    import sys

    probe = "import sys, sigx.report.generate, sigx.report.load; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=ROOT.parent)
    assert out.stdout.strip() == "[]"
