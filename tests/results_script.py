"""Import a script of results/ (not a package: each is run by path) by its path, for the tests of its numbers."""

import importlib.util
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"


def load_results_script(*parts: str):
    """The module of ``results/<parts...>``, e.g. ``load_results_script("screens", "summarise.py")``."""
    path = RESULTS.joinpath(*parts)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
