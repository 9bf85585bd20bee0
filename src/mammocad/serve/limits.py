"""Refuse request bodies over the upload limit before they are spooled to disk.

FastAPI parses a multipart body completely before the route runs, so the route alone cannot
stop a 50 GB upload from filling the disk. This ASGI middleware answers 413 at once when
``Content-Length`` is too large and, for bodies without one (chunked), stops reading at the
limit and replaces whatever the app answers with the 413.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _BodyTooLargeError(Exception):
    pass


def _body(limit: int) -> bytes:
    return json.dumps(
        {
            "detail": f"the request body is larger than {limit} bytes "
            "(MAMMOCAD_MAX_UPLOAD_BYTES): upload the study in parts",
            "code": "upload_too_large",
        }
    ).encode("utf-8")


async def _send_413(send: Send, limit: int) -> None:
    body = _body(limit)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_413(send, self.max_bytes)
            return
        state: dict[str, Any] = {"seen": 0, "over": False, "answered": False}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > self.max_bytes:
                    state["over"] = True
                    raise _BodyTooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            if state["over"]:  # the app answers its parse error: answer 413 instead, once
                if not state["answered"]:
                    state["answered"] = True
                    await _send_413(send, self.max_bytes)
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLargeError:
            if not state["answered"]:
                state["answered"] = True
                await _send_413(send, self.max_bytes)
