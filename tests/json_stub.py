"""A local HTTP server that answers JSON POSTs, for the tests of sigx's HTTP clients (the retrieval server,
the LLM judge): no network, a free port, one thread per request."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class JsonStubServer:
    """``respond(body)`` gets each request's JSON body and returns (HTTP status, payload): a dict or list is sent
    as JSON, bytes as they are, None as an empty body. ``url`` is the server's address followed by ``path``."""

    def __init__(self, respond: Callable[[dict], tuple[int, object]], path: str = ""):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                status, payload = respond(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                data = b"" if payload is None else payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    if data:
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout tests)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
