"""The metrics of the report's cell table, in a module of their own that imports nothing, so a module below the
report (the ablation's plan, which refuses an ``ablation.metric`` no run writes) can read the list without
importing the report's loader, which imports the plan."""

# summary.json key (or a value the report derives from metrics.jsonl) -> what it is
METRICS = {
    "final_reward": "final held-out reward",
    "reward_auc": "area under the held-out reward curve (mean reward over training)",
    "final_critique_accuracy": "GC-RL critique accuracy (last 5 steps)",
    "tokens_per_s": "generated tokens per second of training step",
}


def metric_description(metric: str) -> str:
    """What a metric is: the table's own words, or the summary key it is (any numeric key a run's summary.json
    holds may be analysed: a technique's own summary entries reach the report that way)."""
    return METRICS.get(metric, f"the runs' summary.json key {metric}")
