"""``sigx report``: read an ablation's run store and test whether the techniques' gains add up.

- :mod:`.metrics` names the cell table's metrics (imported by the ablation's plan too, hence its own module);
- :mod:`.load` turns the run store (or an archive) into one table row per run (and the reward curves), and lists
  what is missing or failed; :mod:`.seeds` keeps a subset of its seeds;
- :mod:`.stats` computes the cell table, the factorial effects (statsmodels OLS, HC2 standard errors), the
  seed-paired additivity gaps and each mechanism's room; :mod:`.batches` says where the runs came from (warm
  start, code, machine) and whether a batch difference could be inside an effect;
- :mod:`.build` assembles them into one :class:`~sigx.report.build.Report`; :mod:`.replication` checks a
  reference report's conclusions on it, :mod:`.compare` compares two stores' effects;
- :mod:`.keep` decides whether a report may replace the one in its folder; :mod:`.plots` draws the PNGs
  (matplotlib); :mod:`.render` writes markdown / CSV / JSON and the terminal tables; :mod:`.generate` runs
  them in order for ``sigx report``.
"""
