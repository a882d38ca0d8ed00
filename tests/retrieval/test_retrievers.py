"""Retrievers: BM25 over a corpus built on the fly (known query -> known passage first; the index built once and
cached, rebuilt when the corpus changes) and Search-R1's HTTP protocol against a local stub server (both answer
shapes; down, slow and malformed servers end in one line after the retries)."""

import json
import time
from pathlib import Path

import pytest
from json_stub import JsonStubServer
from qa_data import build_world, needs_bm25s

from sigx.nodes import free_port
from sigx.retrieval import Passage, RetrievalError
from sigx.retrieval.bm25 import BM25Retriever
from sigx.retrieval.corpus import read_corpus
from sigx.retrieval.http import HTTPRetriever


def write_corpus(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


CORPUS = [
    {"id": "a", "title": "Paris", "text": "Paris is the capital and largest city of France."},
    {"id": "b", "title": "Rome", "text": "Rome is the capital city of Italy, on the Tiber."},
    {"id": "c", "title": "Berlin", "text": "Berlin is the capital of Germany and its largest city."},
    {"id": "d", "title": "Cello", "text": "The cello is a bowed string instrument of the violin family."},
]


# ------------------------------------------------------------------------------------------------ BM25
@needs_bm25s
def test_bm25_ranks_the_passage_that_holds_the_query_terms_first(tmp_path):
    retriever = BM25Retriever.open(write_corpus(tmp_path / "corpus.jsonl", CORPUS), log=lambda *_: None)
    found = retriever.search(["capital of Italy", "bowed string instrument", "Germany largest city", "zebra"], k=3)
    assert [p.id for p in found[0]][0] == "b"
    assert [p.id for p in found[1]] == ["d"]  # only passages sharing a term are returned
    assert found[2][0].id == "c" and found[2][0].title == "Berlin" and found[2][0].score > found[2][1].score
    assert found[3] == []


@needs_bm25s
def test_bm25_finds_each_person_of_a_generated_world_by_name(tmp_path):
    facts = build_world(tmp_path)
    retriever = BM25Retriever.open(tmp_path / "corpus.jsonl", log=lambda *_: None)
    names = list(facts)
    found = retriever.search([f"where does {n} live" for n in names], k=3)
    assert all(hits[0].title.lower() == n and facts[n][0].title() in hits[0].text for n, hits in zip(names, found))


@needs_bm25s
def test_the_bm25_index_is_built_once_cached_beside_the_corpus_and_rebuilt_when_the_corpus_changes(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.jsonl", CORPUS)
    logs = []
    BM25Retriever.open(corpus, log=logs.append)
    assert len(logs) == 1 and (tmp_path / "corpus.jsonl.bm25s").is_dir()
    again = BM25Retriever.open(corpus, log=logs.append)  # from the cache: no second build
    assert len(logs) == 1 and again.search(["Tiber"], 1)[0][0].id == "b"
    time.sleep(0.01)
    write_corpus(corpus, CORPUS + [{"id": "e", "title": "Tiber", "text": "The Tiber flows through Rome."}])
    changed = BM25Retriever.open(corpus, log=logs.append)
    assert len(logs) == 2 and changed.search(["Tiber flows"], 1)[0][0].id == "e"
    assert not list((tmp_path / "corpus.jsonl.bm25s").glob(".build-*"))  # nothing half written is left


@needs_bm25s
@pytest.mark.parametrize("damaged", ["params.index.json", "vocab.index.json", "data.csc.index.npy",
                                     "indptr.csc.index.npy"])
def test_a_damaged_cached_index_is_built_again(tmp_path, damaged):
    """A cache, so a file of it that cannot be read (was bm25s's numpy or json traceback) means building it again."""
    corpus = write_corpus(tmp_path / "corpus.jsonl", CORPUS)
    BM25Retriever.open(corpus, log=lambda *_: None)
    (cached,) = (tmp_path / "corpus.jsonl.bm25s").glob("[0-9a-f]*")
    (cached / damaged).write_bytes(b"garbage")
    logs = []
    rebuilt = BM25Retriever.open(corpus, log=logs.append)
    assert logs[0] == f"the cached BM25 index {cached} is damaged: built again" and len(logs) == 2
    assert rebuilt.search(["Tiber"], 1)[0][0].id == "b"
    assert BM25Retriever.open(corpus, log=logs.append).search(["Tiber"], 1)[0][0].id == "b" and len(logs) == 2


def test_search_r1_contents_rows_are_read_as_title_and_text(tmp_path):
    corpus = write_corpus(tmp_path / "wiki.jsonl", [{"id": "0", "contents": "\"Art Brut\"\nArt Brut are a rock band."}])
    assert list(read_corpus(corpus)) == [Passage("0", "Art Brut", "Art Brut are a rock band.",
                                                 contents="\"Art Brut\"\nArt Brut are a rock band.")]


@needs_bm25s
@pytest.mark.parametrize("content, message", [
    (None, "is not a file"),
    ('{"id": "1", "text": "ok"}\n{"id": 2, "text": \n', "line 2: not JSON"),
    ('{"id": "1", "title": "x"}\n', "line 1: a passage needs 'text'"),
    ('{"title": "x", "text": "y"}\n', "line 1: a passage needs an 'id'"),
    ('[1, 2]\n', "line 1: not a JSON object"),
    ("", "the corpus has no passages"),
    ('{"id": 1, "text": ""}\n{"id": 2, "title": "a", "text": "the b"}\n',  # stopwords and one-letter words only
     "none of its 2 passages has a word BM25 can index"),  # (bm25s: max() of an empty vocabulary, a traceback)
])
def test_a_bad_corpus_is_one_line_naming_the_field_file_and_line(tmp_path, content, message):
    path = tmp_path / "corpus.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RetrievalError) as err:
        BM25Retriever.open(path, log=lambda *_: None)
    assert len(err.value.problems) == 1 and "\n" not in str(err.value)
    assert str(err.value).startswith("task.retriever.corpus: ") and message in str(err.value)


def test_without_the_bm25s_package_kind_bm25_is_one_line_saying_what_to_install(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bm25s" else find_spec(name, *a))
    with pytest.raises(RetrievalError) as err:
        BM25Retriever.open(write_corpus(tmp_path / "corpus.jsonl", CORPUS), log=lambda *_: None)
    assert str(err.value) == "task.retriever: kind bm25 needs the bm25s package: pip install 'sigx[search]'"


# ------------------------------------------------------------------------------------------------ HTTP
class RetrievalStub(JsonStubServer):
    """Search-R1's retrieval server, in miniature: POST {"queries", "topk", "return_scores"} -> {"result"}.
    ``mode``: ok | bare (documents without scores) | slow | malformed | error (HTTP 500)."""

    def __init__(self, corpus=CORPUS, mode="ok", delay=1.0, docs=None):
        self.mode, self.delay, self.requests = mode, delay, []
        self.docs = docs if docs is not None else [{"id": r["id"], "contents": f"\"{r['title']}\"\n{r['text']}"}
                                                   for r in corpus]
        super().__init__(self.respond, "/retrieve")

    def respond(self, body):
        self.requests.append(body)
        if self.mode == "slow":
            time.sleep(self.delay)
        if self.mode == "error":
            return 500, None
        if self.mode == "malformed":
            return 200, b'{"result": "not a list"}'
        result = []
        for q in body["queries"]:
            words = set(q.lower().split())
            ranked = sorted(self.docs, key=lambda d: -len(words & set(d["contents"].lower().split())))
            top = ranked[: body["topk"]]
            result.append([{"document": d, "score": 1.0 / (i + 1)} for i, d in enumerate(top)]
                          if self.mode != "bare" else top)
        return 200, {"result": result}


@pytest.fixture
def stub():
    servers = []

    def start(**kw):
        servers.append(RetrievalStub(**kw))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.mark.parametrize("mode", ["ok", "bare"])
def test_http_sends_one_batch_per_call_in_search_r1_shape_and_reads_both_answer_shapes(stub, mode):
    server = stub(mode=mode)
    found = HTTPRetriever(server.url).search(["capital of Italy Rome", "bowed cello"], k=2)
    assert server.requests == [{"queries": ["capital of Italy Rome", "bowed cello"], "topk": 2, "return_scores": True}]
    assert [p.id for p in found[0]][0] == "b" and found[0][0].title == "Rome" and found[1][0].id == "d"
    assert len(found[0]) == 2


@pytest.mark.parametrize("mode, why", [("down", "cannot connect"), ("slow", "no answer within 0.2 s"),
                                       ("malformed", "malformed answer"), ("error", "HTTP 500")])
def test_a_failing_server_is_retried_then_one_line(stub, mode, why):
    if mode == "down":
        url, server = f"http://127.0.0.1:{free_port()}/retrieve", None
    else:
        server = stub(mode=mode, delay=1.0)
        url = server.url
    retriever = HTTPRetriever(url, timeout_s=0.2, retries=2, backoff_s=0.01)
    with pytest.raises(RetrievalError) as err:
        retriever.search(["anything"], k=3)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"task.retriever.url: {url}: ") and why in message
    assert "after 3 attempts" in message and "run the same command again to resume" in message
    if server is not None:
        assert len(server.requests) == 3  # the first try and two retries
