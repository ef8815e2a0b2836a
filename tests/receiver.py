"""A webhook receiver on 127.0.0.1 that records every request: what alerts really send.

`statuses` answers the next requests with those HTTP statuses (then 200); `hold()` makes the
next request wait, unanswered, until `release()`: a receiver that hangs, observable through
`waiting`. A request is recorded when it is answered (a held one, once released).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict
    status: int  # what the receiver answered


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.statuses: list[int] = []
        self.waiting = threading.Event()  # a held request has arrived
        self._held = False
        self._release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver._lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    hold, receiver._held = receiver._held, False
                if hold:  # recorded once answered: a held request is not yet received
                    receiver.waiting.set()
                    receiver._release.wait(timeout=600)
                with receiver._lock:
                    receiver.requests.append(Request(self.path, dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def hold(self) -> None:
        self._held = True

    def release(self) -> None:
        self._release.set()

    def accepted(self, path: str) -> list[Request]:
        """The requests to `path` the receiver answered with a 2xx."""
        return [r for r in self.requests if r.path == path and 200 <= r.status < 300]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
