"""One JSON request to a server sigx does not control (a retrieval server, an LLM judge's endpoint), with every
way it can go wrong turned into one line.

Why not urllib's or the openai client's timeout: both are per socket operation, so a server that drips a byte
every half second holds a request for as long as it likes (measured: ~30 s under ``timeout_s: 2``). Here the
timeout is a deadline for the whole request (connect, send, headers, body): the request runs in a helper
thread and, when the deadline passes, its socket is shut down, which ends the read at once. The answer is
also bounded in size, and its JSON must be strict (no ``NaN`` / ``Infinity``) and nested less than Python's
recursion limit allows, so no reply can raise anything but :class:`HTTPFailure`.
"""

from __future__ import annotations

import http.client
import json
import math
import socket
import threading
import time
import urllib.parse
from typing import Callable, TypeVar

T = TypeVar("T")

#: the largest answer read (a top-k retrieval answer or one chat completion is a few hundred kB at most)
MAX_ANSWER_BYTES = 64 * 2**20
#: answers the same request may get right on a second try: timeouts, rate limits, server errors
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


class HTTPFailure(Exception):
    """Why a request got no usable answer, in a few words (``HTTP 503 Service Unavailable``, ``no answer
    within 2 s``); ``retryable`` says whether asking again may help."""

    def __init__(self, why: str, retryable: bool = True, status: int | None = None):
        super().__init__(why)
        self.why, self.retryable, self.status = why, retryable, status


def _no_constants(name: str):
    raise ValueError(f"{name} is not a JSON number")


def loads_strict(text: str | bytes) -> object:
    """JSON as RFC 8259 has it: ``NaN`` / ``Infinity`` refused, and nesting too deep for Python refused as a
    ValueError rather than a RecursionError."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text, parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg})") from None
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


def finite_number(value: object) -> float | None:
    """``value`` as a float when it is a finite number (not a boolean, not a string), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def post_json(url: str, payload: object, timeout_s: float, headers: dict[str, str] | None = None,
              max_bytes: int = MAX_ANSWER_BYTES) -> object:
    """POST ``payload`` as JSON and return the answer's JSON; HTTPFailure for anything else, within
    ``timeout_s`` seconds in all."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HTTPFailure("not an http(s) URL", retryable=False)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    try:
        connection = connection_class(parts.hostname, parts.port, timeout=timeout_s)
    except ValueError as err:  # a port that is not a number
        raise HTTPFailure(f"not a usable URL ({err})", retryable=False) from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    body = json.dumps(payload).encode()
    outcome: dict = {}

    def exchange() -> None:
        try:
            connection.request("POST", target, body=body, headers={"Content-Type": "application/json",
                                                                   "Accept": "application/json", **(headers or {})})
            response = connection.getresponse()
            outcome["status"], outcome["reason"] = response.status, response.reason
            outcome["body"] = response.read(max_bytes + 1)
            declared = response.getheader("Content-Length", "")
            if declared.isdigit() and len(outcome["body"]) < min(int(declared), max_bytes + 1):
                raise http.client.IncompleteRead(outcome["body"], int(declared) - len(outcome["body"]))
        except BaseException as err:  # handed to the caller's thread
            outcome["error"] = err

    worker = threading.Thread(target=exchange, daemon=True, name="sigx-http")
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        sock = connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # ends the worker's blocked read now
            except OSError:
                pass
        connection.close()
        raise HTTPFailure(f"no answer within {timeout_s:g} s")
    connection.close()
    error = outcome.get("error")
    if isinstance(error, TimeoutError):
        raise HTTPFailure(f"no answer within {timeout_s:g} s")
    if isinstance(error, http.client.IncompleteRead):
        raise HTTPFailure("the answer ended before its declared length")
    if isinstance(error, http.client.HTTPException):
        raise HTTPFailure(f"not a valid HTTP answer ({type(error).__name__})")
    if isinstance(error, OSError):
        raise HTTPFailure(f"cannot connect ({error.strerror or type(error).__name__})")
    if error is not None:
        raise HTTPFailure(f"request failed ({type(error).__name__}: {str(error)[:80]})")
    status = outcome["status"]
    if status != 200:
        raise HTTPFailure(f"HTTP {status} {str(outcome['reason'])[:60]}".rstrip(),
                          retryable=status in RETRYABLE_STATUS, status=status)
    if len(outcome["body"]) > max_bytes:
        raise HTTPFailure(f"an answer larger than {max_bytes // 2**20} MiB")
    try:
        return loads_strict(outcome["body"])
    except ValueError as err:
        raise HTTPFailure(f"malformed answer ({err})") from None


class GaveUp(Exception):
    """``with_retries`` stopped: ``last`` is the last failure (an HTTPFailure, or the ValueError of an answer of
    the wrong shape), after ``attempts`` tries."""

    def __init__(self, last: Exception, attempts: int):
        super().__init__(str(last))
        self.last, self.attempts = last, attempts


def with_retries(attempt: Callable[[], T], retries: int, backoff_s: float = 1.0) -> T:
    """``attempt()``'s result, asking again up to ``retries`` times, backing off 1, 2, 4 ... x ``backoff_s``
    seconds, while it fails with an HTTPFailure that may pass (a 4xx other than 408 / 429 stops at once) or with
    a ValueError (an answer that is not what was asked for); then :class:`GaveUp`. The one retry loop of sigx's
    HTTP clients: each turns GaveUp into its own one-line message."""
    last: Exception | None = None
    for tried in range(retries + 1):
        if tried:
            time.sleep(backoff_s * 2 ** (tried - 1))
        try:
            return attempt()
        except HTTPFailure as err:
            last = err
            if not err.retryable:
                raise GaveUp(err, tried + 1) from None
        except ValueError as err:
            last = err
    raise GaveUp(last, retries + 1)
