"""sigx: GRPO with composable learning-signal techniques, and the factorial ablations that test whether
their gains add up. See README.md; the CLI entry point is ``sigx.cli``."""

__version__ = "0.1.0"
