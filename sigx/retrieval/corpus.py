"""Reading a passage corpus: JSONL, one passage per line, as ``{"id", "title", "text"}`` or in Search-R1's
wiki-18 form ``{"id", "contents"}`` where ``contents`` is the title (often quoted), a newline, then the text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from sigx.retrieval.base import Passage, RetrievalError


def passage_from_row(row: dict, where: str, field: str = "task.retriever.corpus", need_id: bool = True) -> Passage:
    """A passage from a corpus line or a server's document. A server's documents may come without an id
    (Search-R1's BM25 server, when its index stores the documents, sends only title, text and contents; its
    client reads only ``contents``): ``need_id`` False accepts them."""
    if not isinstance(row, dict):
        raise RetrievalError(f"{field}: {where}: not a JSON object")
    pid = row.get("id", row.get("_id"))
    contents = None
    if "contents" in row and isinstance(row["contents"], str):
        contents = row["contents"]
        title, _, text = contents.partition("\n")
        title = title.strip().strip('"')
    elif isinstance(row.get("text"), str):
        title, text = str(row.get("title") or ""), row["text"]
    else:
        raise RetrievalError(f"{field}: {where}: a passage needs 'text' (with 'title') or 'contents'")
    if pid is None and need_id:
        raise RetrievalError(f"{field}: {where}: a passage needs an 'id'")
    return Passage(id="" if pid is None else str(pid), title=title, text=text.strip(), contents=contents)


def read_corpus(path: str | Path) -> Iterator[Passage]:
    """Every passage, in file order; a malformed line is a one-line error naming the file and the line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise RetrievalError(f"task.retriever.corpus: {str(path)!r} is not a file (a JSONL of passages)")
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise RetrievalError(f"task.retriever.corpus: {path} line {number}: not JSON ({err.msg})") from None
            yield passage_from_row(row, f"{path} line {number}")
