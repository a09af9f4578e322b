"""A project's outbound webhook endpoint, one per mode: its URL and its signing secrets (sealed at rest)."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import NotFoundError, ValidationError
from scrawn.server.secretbox import SecretBox
from scrawn.server.webhooks import repository, signing
from scrawn.server.webhooks.types import Endpoint as Endpoint  # the type the API and CLI name from here

MAX_URL = 2048


def check_url(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("url", "must be a non-empty string")
    url = value.strip()
    if len(url) > MAX_URL:
        raise ValidationError("url", f"must be at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValidationError("url", "must be an http or https URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("url", "must be an http or https URL")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ValidationError("url", "must not contain whitespace or control characters")
    return url


def check_mode(value: object) -> str:
    if value not in ("live", "test"):
        raise ValidationError("mode", 'must be "live" or "test"')
    return str(value)


def _context(project_id: str, mode: str, column: str) -> str:
    return f"{project_id}:{mode}:webhook_endpoints.{column}"


async def get(conn: AsyncConnection, box: SecretBox, project_id: str, mode: str) -> Endpoint | None:
    sealed = await repository.endpoint(conn, project_id, mode)
    if sealed is None:
        return None
    return replace(
        sealed,
        secret=box.open(sealed.secret, _context(project_id, mode, "secret")),
        signing_key=box.open(sealed.signing_key, _context(project_id, mode, "signing_key")),
    )


async def put(
    conn: AsyncConnection, box: SecretBox, project_id: str, mode: str, url: str, *, rotate: bool = False
) -> tuple[Endpoint, bool]:
    """Set the URL (checked by the caller with check_url). The secrets stay unless ``rotate`` (or this is
    the first endpoint). Returns the endpoint and whether it was created. ``rotate`` never opens the old
    secrets, so it also replaces secrets sealed under a previous ``SCRAWN_SECRET``."""
    opened = repository.endpoint(conn, project_id, mode) if rotate else get(conn, box, project_id, mode)
    current = await opened
    secret = signing.new_secret() if current is None or rotate else current.secret
    key = signing.new_signing_key() if current is None or rotate else current.signing_key
    sealed = (
        box.seal(secret, _context(project_id, mode, "secret")),
        box.seal(key, _context(project_id, mode, "signing_key")),
    )
    if current is None:
        created_at = await repository.insert_endpoint(conn, project_id, mode, url, *sealed)
        if created_at is None:  # a concurrent first PUT won: change theirs like any later PUT
            return await put(conn, box, project_id, mode, url, rotate=rotate)
        return Endpoint(project_id, mode, url, secret, key, created_at, created_at), True
    updated_at = await repository.update_endpoint(conn, project_id, mode, url, *sealed)
    return Endpoint(project_id, mode, url, secret, key, current.created_at, updated_at), False


async def remove(conn: AsyncConnection, project_id: str, mode: str) -> None:
    """Delete the endpoint. Messages already queued stay in the log; new events queue nothing."""
    if not await repository.delete_endpoint(conn, project_id, mode):
        raise NotFoundError(f"no webhook endpoint in {mode} mode")
