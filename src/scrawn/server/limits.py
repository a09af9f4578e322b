"""Limits the wire contract sets for every domain (DESIGN §3), kept once so no domain reads another's."""

from __future__ import annotations

# userId: non-empty, at most this many characters, any text.
MAX_USER_ID = 256
