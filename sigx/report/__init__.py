"""``sigx report``: read an ablation's run store and test whether the techniques' gains add up.

- :mod:`.metrics` names the cell table's metrics (imported by the ablation's plan too, hence its own module);
- :mod:`.load` turns the run store into one table row per run (and the reward curves), and lists what is
  missing or failed;
- :mod:`.stats` computes the cell table, the factorial effects (statsmodels OLS) and the additivity table
  (scipy bootstrap);
- :mod:`.plots` draws the PNGs (matplotlib); :mod:`.render` writes markdown / CSV / JSON and the terminal tables.
"""
