"""What the keys domain hands to others: the caller of a request and a stored key (never its secret)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scrawn.errors import PermissionDeniedError

Role = Literal["dash", "live", "test"]
Mode = Literal["live", "test"]
ROLES: tuple[Role, ...] = ("dash", "live", "test")
ROLE_NAMES: dict[Role, str] = {"dash": "Dashboard", "live": "Live", "test": "Test"}


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's project and role, and the mode its data lives in."""

    project_id: str
    key_id: str
    role: Role
    mode: Mode

    def require(self, allowed: tuple[Role, ...], action: str) -> None:
        """Refuse a role not allowed for the call, e.g. ``Dashboard keys cannot ingest events``."""
        if self.role not in allowed:
            raise PermissionDeniedError(f"{ROLE_NAMES[self.role]} keys cannot {action}")


@dataclass(frozen=True)
class KeyRecord:
    project_id: str
    id: str
    role: Role
    name: str
    display: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    last_used_at: int | None
