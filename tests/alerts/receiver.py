"""A real local HTTP receiver for alert tests and benches: it answers, fails, hangs, resets
or redirects as a test tells it, and records every request it got (in a thread, so a worker
process, Daphne or the test's own event loop can all post to it).

    with Receiver() as rx:                 # rx.url is http://127.0.0.1:<port>
        rx.script = ["reset", "500", "ok"]  # the next answers, in order; then rx.default
        rx.fail_ratio = 0.1                 # or fail 10 % of requests (seeded)
        ...
        rx.requests                         # [Received(path, headers, body, time), ...]
        rx.on_request = fn                  # fn(received) after recording, before answering

``on_request`` runs in the request's thread, so a test can act at the moment a request is in
flight (``kill -9`` the sender just before it gets its answer).
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# An answer: "ok" (200), a status as text ("500", "400", "429", "204"), "hang" (answer
# nothing for hang_seconds), "reset" (close the connection with RST before answering),
# "redirect" (302 to /elsewhere).
ANSWERS = ("ok", "hang", "reset", "redirect")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    time: float  # time.time() when the request was read
    answer: str  # what the receiver did


@dataclass
class Receiver:
    default: str = "ok"
    fail_ratio: float = 0.0  # of requests answered 500 (on top of the script/default)
    seed: int = 1
    hang_seconds: float = 30.0
    error_body: str = "receiver says no\nsecond line"
    script: list[str] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    on_request: Callable[[Received], None] | None = None

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.random = random.Random(self.seed)
        self.got_one = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16  # one write per answer (no Nagle + delayed-ACK stall)

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                answer = receiver._next_answer()
                got = Received(self.path, dict(self.headers.items()), body, time.time(), answer)
                with receiver.lock:
                    receiver.requests.append(got)
                    receiver.got_one.notify_all()
                if receiver.on_request is not None:
                    receiver.on_request(got)
                receiver._answer(self, answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _next_answer(self) -> str:
        with self.lock:
            if self.script:
                return self.script.pop(0)
            if self.fail_ratio and self.random.random() < self.fail_ratio:
                return "500"
            return self.default

    def _answer(self, handler: BaseHTTPRequestHandler, answer: str) -> None:
        if answer == "hang":
            time.sleep(self.hang_seconds)
            return
        if answer == "reset":
            sock = handler.connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            handler.close_connection = True
            return
        if answer == "redirect":
            handler.send_response(302)
            handler.send_header("Location", f"{self.url}/elsewhere")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        status = 200 if answer == "ok" else int(answer)
        body = b"" if status == 204 else (b"ok" if status < 300 else self.error_body.encode())
        handler.send_response(status)
        if status == 429:
            handler.send_header("Retry-After", "1")
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Block until ``count`` requests arrived (TimeoutError otherwise); returns them."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(self.requests)} of {count} requests after {timeout} s"
                    )
                self.got_one.wait(left)
            return list(self.requests)

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
