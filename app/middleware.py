"""One pure-ASGI guard in front of every route: request id, API key, body-size limit, metrics and access log.

The body limit is enforced while the body streams in: a declared Content-Length over the limit is refused
before anything is read, and a chunked body is cut off at the first byte past the limit.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PayloadTooLarge
from app.services import Services

log = logging.getLogger("app.access")
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
KNOWN_PATHS = frozenset(
    {
        "/",
        "/predict",
        "/predict/batch",
        "/predict/annotated",
        "/healthz",
        "/readyz",
        "/metrics",
        "/model",
        "/docs",
        "/openapi.json",
    }
)
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class Guard:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                process_ms = f"{(time.perf_counter() - started) * 1000:.2f}".encode()
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                    (b"x-process-ms", process_ms),
                ]
            await send(message)

        async def refuse(code: int, error: str, message: str) -> None:
            body = json.dumps({"error": {"code": error, "message": message, "request_id": request_id}}).encode()
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": code,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send_with_id({"type": "http.response.body", "body": body})

        limit = self._body_limit(scope["path"])
        try:
            if not self._authorized(scope["path"], headers):
                await refuse(401, "unauthorized", "missing or wrong X-API-Key header")
            elif headers.get("content-length", "0").isdigit() and int(headers.get("content-length", "0")) > limit:
                await refuse(413, "payload_too_large", f"request body is larger than the {limit} byte limit")
            else:
                await self.app(scope, _limited(receive, limit), send_with_id)
        except PayloadTooLarge as exc:  # raised by the limited receive outside a route's error handling
            if status == 500:
                await refuse(413, "payload_too_large", exc.message)
        finally:
            elapsed = time.perf_counter() - started
            m = self.services.metrics
            m.requests.labels(path, str(status)).inc()
            m.latency.labels(path).observe(elapsed)
            if status >= 400:
                m.errors.labels(str(status)).inc()
            log.info("%s %s %s %.1fms id=%s", scope["method"], scope["path"], status, elapsed * 1000, request_id)

    def _body_limit(self, path: str) -> int:
        settings = self.services.settings
        if path == "/predict/batch":
            return settings.max_upload_bytes * settings.max_batch_files
        return settings.max_upload_bytes * 4 // 3 + 4096  # base64 JSON bodies are a third larger

    def _authorized(self, path: str, headers: dict[str, str]) -> bool:
        key = self.services.settings.api_key
        if key is None or path in OPEN_PATHS:
            return True
        return hmac.compare_digest(headers.get("x-api-key", "").encode(), key.get_secret_value().encode())


def _limited(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"request body is larger than the {limit} byte limit")
        return message

    return wrapped
