"""``sigx ablate``: a recipe's 2^k factorial x seeds, run on shared engines, resumable after any crash.

- :mod:`.plan` expands a recipe into cells (one run each: a technique combination and a seed);
- :mod:`.store` is the run store ``<output_dir>/<name>/``: the plan, the resolved recipe, one directory per
  finished cell, written by atomic rename so that a cell is either absent or complete;
- :mod:`.cell` runs one cell on the engine its process keeps (the shared engine);
- :mod:`.executors` runs the pending cells: ``local`` (in this process, or ``--workers N`` processes) or ``ray``.
"""
