"""The HTTPS server the API server calls to convert modelops objects (POST /convert).

Threads of the standard library's server: a conversion is a few
milliseconds of pure Python (api/conversion.py), and the API server calls it
only when the version asked for differs from the stored one. The request is
still treated as untrusted input: a size cap, a read deadline, JSON that must
be a ConversionReview, and a Failure answer (never a crash) for anything else.

The certificate is reloaded in place (`reload`): new connections get the
new pair, open ones finish with the old.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import tempfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from modelops.api.conversion import review

log = logging.getLogger(__name__)

PATH = "/convert"
HEALTH_PATH = "/healthz"
# A ConversionReview carries every object of a list request; a fleet of
# ModelDeployments with full status is a few MiB. Above this, refuse.
MAX_BODY_BYTES = 64 * 1024 * 1024
READ_TIMEOUT_S = 30.0


class _Handler(BaseHTTPRequestHandler):
    server_version = "modelops-conversion"
    protocol_version = "HTTP/1.1"
    timeout = READ_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("conversion webhook: " + format, *args)

    def _answer(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == HEALTH_PATH:
            self._answer(HTTPStatus.OK, {"status": "ok"})
        else:
            self._answer(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path.split("?")[0] != PATH:
            self._answer(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._answer(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length required"})
            return
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "request too large"})
            return
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            self._answer(HTTPStatus.BAD_REQUEST, {"error": "not JSON"})
            return
        answer = review(body if isinstance(body, dict) else {})
        result = answer["response"]["result"]
        if result["status"] != "Success":
            log.warning("conversion refused: %s", result.get("message"))
        self._answer(HTTPStatus.OK, answer)


class ConversionServer:
    """The webhook's HTTPS server on its own threads; `start`, `reload`, `stop`."""

    def __init__(self, host: str, port: int, cert_pem: str, key_pem: str) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.reload(cert_pem, key_pem)
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.socket = self._context.wrap_socket(self._httpd.socket, server_side=True)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def reload(self, cert_pem: str, key_pem: str) -> None:
        """Serve this pair from the next connection on."""
        _load_cert_chain(self._context, cert_pem, key_pem)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="conversion-webhook", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _load_cert_chain(context: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    """load_cert_chain reads files only. The operator's pod has a read-only root and
    no writable volume, so the pair goes into anonymous memory files (memfd), read
    through /proc; a temporary directory where there is no memfd_create."""
    if not hasattr(os, "memfd_create"):
        with tempfile.TemporaryDirectory(prefix="modelops-webhook-") as tmp:
            cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
            cert.write_text(cert_pem)
            key.touch(mode=0o600)
            key.write_text(key_pem)
            context.load_cert_chain(cert, key)
        return
    fds = []
    try:
        for name, text in (("tls.crt", cert_pem), ("tls.key", key_pem)):
            fd = os.memfd_create(name, os.MFD_CLOEXEC)
            fds.append(fd)
            os.write(fd, text.encode())
        context.load_cert_chain(*(f"/proc/self/fd/{fd}" for fd in fds))
    finally:
        for fd in fds:
            os.close(fd)
