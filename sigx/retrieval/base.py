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
    """A retrieved passage. ``contents`` is the text as the corpus or server holds it (wiki-18: the title, often
    quoted, a newline, then the text): Search-R1 renders observations from it, so it is kept unchanged beside
    the cleaned ``title`` and ``text`` the other templates use. ``id`` is "" where the server sends none."""

    id: str
    title: str
    text: str
    score: float = 0.0
    contents: str | None = None

    @property
    def raw(self) -> str:
        """``contents`` as received, or, for a passage read as title and text, ``title``, newline, ``text``."""
        return self.contents if self.contents is not None else f"{self.title}\n{self.text}"


class Retriever(ABC):
    @abstractmethod
    def search(self, queries: list[str], k: int) -> list[list[Passage]]:
        """For each query, up to ``k`` passages, best first (fewer when fewer match)."""
