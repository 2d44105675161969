"""Real receivers of notifications on 127.0.0.1 (tests and the demo): an SMTP server
(aiosmtpd) and an HTTP server that keeps every request. Each binds its socket when made, so
one made inside a fleet host's network namespace (Host.call) listens there."""

from __future__ import annotations

import email
import email.policy
import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


class Mailbox(Controller):
    """An SMTP server on a port the kernel picked (bound before it starts: no race)."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.messages: list[email.message.EmailMessage] = []
        super().__init__(self, hostname="127.0.0.1", port=self.socket.getsockname()[1])

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self.socket)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(mail)  # type: ignore[arg-type]
        return "250 OK"

    @property
    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=dupctl@example.com&to=ops@example.com"


class Receiver(ThreadingHTTPServer):
    """An HTTP server that answers 200 and keeps (method, path, body) of every request,
    before it answers: once the sender has its answer, the request is here."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(body) for method, path, body in self.requests if "/hook/" in path]


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append((self.command, self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test's stderr must hold only what dupctl says."""
