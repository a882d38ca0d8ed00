"""Model loading: the built-in ``sigx/tiny`` (built and warm-started locally) or any transformers causal LM."""

from sigx.models.loading import load_base

__all__ = ["load_base"]
