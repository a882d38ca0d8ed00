"""``sigx ablate``: a recipe's factorial design x seeds, run on shared engines, resumable after any crash.

- :mod:`.plan` expands a recipe into cells (one run each: a technique combination and a seed);
- :mod:`.store` is the run store ``<output_dir>/<name>/``: the plan, the resolved recipe, one directory per
  finished cell, written by atomic rename so that a cell is either absent or complete;
- :mod:`.cell` runs one cell on the engine its process keeps (the shared engine);
- :mod:`.design` builds the 2^k design or a 2^(k-p) fraction of resolution >= V, with its aliases;
- :mod:`.launchers` runs the pending cells: ``local`` (in this process, or ``--workers N`` processes), ``ray`` or
  ``slurm`` (submitit), each one module behind one small interface.
"""
