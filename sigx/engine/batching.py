"""How a GRPO step's batch is laid out for the update: micro-batches bounded in rows and padded tokens, the
per-token values of a trimmed micro-batch written back into the batch-wide tensor, and each micro-batch's
share of the loss normaliser (so that accumulated gradients equal the unsplit mini-batch's). Pure functions of
tensors: they change memory and rounding only, never what the update computes."""

from __future__ import annotations

import math

import torch

from sigx.engine.trajectory import RolloutBatch


def micro_batches(batch: RolloutBatch, rows: torch.Tensor | None, max_rows: int | None,
                  max_tokens: int | None) -> list[tuple[torch.Tensor, RolloutBatch]]:
    """``rows`` of ``batch`` (default: all) in micro-batches of at most ``max_rows`` rows and ``max_tokens`` padded
    tokens, each cut to its longest row. With either bound set, rows are taken longest first, so that rows of
    similar length share a micro-batch (less padding) and the first micro-batch is the largest (an out-of-memory
    error shows at once). Returns (row indices into ``batch``, micro-batch) pairs."""
    rows = torch.arange(len(batch)) if rows is None else rows
    lengths = batch.attention_mask[rows].sum(1)
    if max_rows is None and max_tokens is None:
        parts = [rows] if len(rows) else []
    else:
        order = torch.argsort(lengths, descending=True, stable=True)
        row_cap, token_cap = max_rows or len(rows), max_tokens or math.inf
        parts, current, width = [], [], 0
        for row, length in zip(rows[order].tolist(), lengths[order].tolist()):
            if current and (len(current) >= row_cap or (len(current) + 1) * max(width, length) > token_cap):
                parts.append(torch.tensor(current))
                current, width = [], 0
            current.append(row)
            width = max(width, length)
        if current:
            parts.append(torch.tensor(current))
    return [(index, batch.select(index).trimmed()) for index in parts]


def place(full: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> None:
    """Write a trimmed micro-batch's per-token values into the batch-wide tensor; the columns it cut off are
    padding, set to 0 (finite, so that any later micro-batch that is cut wider stays finite there)."""
    full[rows] = 0.0
    full[rows, : values.shape[1]] = values.to(full.device, full.dtype)


def loss_share(micro: RolloutBatch, mini: RolloutBatch, aggregation: str) -> float:
    """The micro-batch's share of the mini-batch's loss normaliser, so that the accumulated gradient is the
    mini-batch's exactly: its share of generated tokens (token-mean), of rows (token-sum-norm, whose normaliser
    is rows x a constant) or of non-empty sequences (seq-mean). The normaliser counts every row of the
    mini-batch, those left out for a zero advantage included."""
    if aggregation == "token-mean":
        return float(micro.loss_mask.sum() / mini.loss_mask.sum().clamp_min(1))
    if aggregation == "token-sum-norm":
        return len(micro) / max(len(mini), 1)
    has_tokens = lambda b: float((b.loss_mask.sum(-1) > 0).sum())  # noqa: E731
    return has_tokens(micro) / max(has_tokens(mini), 1.0)
