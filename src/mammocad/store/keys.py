"""API keys (stored as hashes) and the audit log."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mammocad.errors import MammocadError
from mammocad.store.models import ApiKey, AuditEntry, as_utc, utcnow

KEY_PREFIX = "mcad_"
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyError(MammocadError):
    """An API key cannot be created (e.g. the name is taken)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyCheck:
    """The outcome of checking a presented key: ``key`` is set when it is known."""

    key: ApiKey | None

    @property
    def valid(self) -> bool:
        return self.key is not None and self.key.revoked_at is None

    @property
    def revoked(self) -> bool:
        return self.key is not None and self.key.revoked_at is not None


def hash_key(key: str) -> str:
    # keys carry 256 random bits: a fast hash is safe here (no dictionary to attack), and
    # lets a request find its key by an indexed lookup
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_api_key(session: Session, *, name: str) -> str:
    """Store a new key named ``name`` and return the key itself (shown once, never stored).

    Raises:
        ApiKeyError: ``name`` is empty or already used.
    """
    name = name.strip()
    if not name:
        raise ApiKeyError("give the key a name (--name), e.g. the user or system that uses it")
    longest: int | None = getattr(ApiKey.__table__.c.name.type, "length", None)
    if longest is not None and len(name) > longest:  # PostgreSQL would refuse it
        raise ApiKeyError(f"the key name is {len(name)} characters long: use at most {longest}")
    if session.scalar(select(ApiKey).where(ApiKey.name == name)) is not None:
        raise ApiKeyError(f"an API key named {name!r} exists already: choose another name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(name=name, key_hash=hash_key(key), prefix=key[:12], created_at=utcnow()))
    session.flush()
    return key


def revoke_api_key(session: Session, *, name: str) -> bool:
    """Revoke the key named ``name``; ``False`` when there is none."""
    key = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if key is None:
        return False
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return True


def check_api_key(session: Session, presented: str) -> KeyCheck:
    """Look ``presented`` up by its hash; a valid key gets its ``last_used_at`` updated."""
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(presented)))
    now = utcnow()
    # at most one write a minute per key: a UI polling every second must not turn each
    # read into a write (SQLite has one writer at a time)
    if key is not None and key.revoked_at is None:
        last = key.last_used_at
        if last is None or now - as_utc(last) > LAST_USED_RESOLUTION:
            key.last_used_at = now
    return KeyCheck(key=key)


def audit(
    session: Session,
    *,
    actor: str,
    action: str,
    study_instance_uid: str | None,
    detail: str | None = None,
) -> None:
    """Record that ``actor`` did ``action`` (create, read, delete, feedback) on a study."""
    session.add(
        AuditEntry(
            at=utcnow(),
            actor=actor,
            action=action,
            study_instance_uid=study_instance_uid,
            detail=detail,
        )
    )
