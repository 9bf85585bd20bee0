"""API-key authentication: ``Authorization: Bearer <key>`` on every route but health.

Pictures (``overlay.png``, ``input.png``) also take the key as ``?key=<key>`` because an
``<img>`` tag cannot send headers. A missing or unknown key is 401 with
``WWW-Authenticate: Bearer``; a revoked key is 403.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mammocad.serve.state import AppState, app_state
from mammocad.store.keys import check_api_key
from mammocad.store.session import transaction

ANONYMOUS = "anonymous"
#: the server's access log (uvicorn's), which writes each request's URL with its query
ACCESS_LOGGER = "uvicorn.access"
#: the query parameter ``require_key_or_query`` reads
KEY_PARAMETER = "key"
# one ``name=value`` of a query, split as parse_qsl splits it (at ``&``, then the first
# ``=``); the value runs to the next ``&`` or a space (uvicorn writes ``"`` as %22)
_QUERY_PAIR = re.compile(r"(?<=[?&])([^&=\s]*)=([^&\s]*)")
_bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `mammocad apikey create --name NAME`.",
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes the request: the API key's name, or ``anonymous`` with keys off."""

    name: str


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": 'Bearer realm="mammocad"'},
    )


def _authenticate(state: AppState, presented: str | None) -> Principal:
    if not state.settings.require_api_key:
        return Principal(ANONYMOUS)
    if not presented:
        raise _unauthorized(
            "missing API key: send `Authorization: Bearer <key>` (create a key with "
            "`mammocad apikey create --name NAME`)"
        )
    with transaction(state.sessions) as session:
        check = check_api_key(session, presented)
        name = check.key.name if check.key is not None else None
    if check.revoked:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail=f"the API key {name!r} was revoked: ask an administrator for a new one",
        )
    if name is None:
        raise _unauthorized("invalid API key: check the key, or create one with `mammocad apikey`")
    return Principal(name)


def require_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Dependency of the JSON routes: the Bearer key."""
    presented = credentials.credentials if credentials is not None else None
    return _authenticate(app_state(request), presented)


def require_key_or_query(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    key: Annotated[
        str | None,
        Query(
            alias=KEY_PARAMETER,
            description="The API key, for `<img src>` which cannot send headers.",
        ),
    ] = None,
) -> Principal:
    """Dependency of the picture routes: the Bearer key, else ``?key=``."""
    presented = credentials.credentials if credentials is not None else key
    return _authenticate(app_state(request), presented)


def _is_key_parameter(raw_name: str) -> bool:
    """Whether the service reads this raw query parameter name as the API key. Starlette
    decodes names with ``parse_qsl`` (``%6Bey`` and ``k%65y`` are ``key``; ``+`` a space), so
    this does too. Case is ignored, though the service reads ``key`` only: ``?KEY=`` is a
    client's attempt to send its key, which is no less a secret for being refused."""
    decoded = parse_qsl(f"{raw_name}=", keep_blank_values=True)
    return len(decoded) == 1 and decoded[0][0].lower() == KEY_PARAMETER


def _redact(text: str) -> str:
    return _QUERY_PAIR.sub(
        lambda pair: f"{pair[1]}=***" if _is_key_parameter(pair[1]) else pair[0], text
    )


class RedactQueryKey(logging.Filter):
    """Masks ``?key=`` in the URLs of log records: a picture URL carries the API key, and a log
    must hold no credential (OWASP ASVS 4.0 V7.1.1); the server logs every URL it serves, with
    the query as the client wrote it (percent-encoded names too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _redact(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


#: added once to the access logger by ``create_app`` (``addFilter`` ignores a second add)
REDACT_QUERY_KEY = RedactQueryKey()


Authenticated = Annotated[Principal, Depends(require_key)]
AuthenticatedPicture = Annotated[Principal, Depends(require_key_or_query)]
