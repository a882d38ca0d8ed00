"""The retriever interface (see :mod:`sigx.retrieval`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from sigx.config import RecipeError


class RetrievalError(RecipeError):
    """A retriever that cannot answer; one line for the CLI. A run stopped by it resumes from its last checkpoint
    when the same command runs again."""

    def __init__(self, message: str | list[str]):
        super().__init__([message] if isinstance(message, str) else message)


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str
    score: float = 0.0


class Retriever(ABC):
    @abstractmethod
    def search(self, queries: list[str], k: int) -> list[list[Passage]]:
        """For each query, up to ``k`` passages, best first (fewer when fewer match)."""
