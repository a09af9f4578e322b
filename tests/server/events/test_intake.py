"""Intake's shortcuts give exactly what the general code gives: a stored fingerprint must never change, or a
retry after an upgrade would be refused as a conflict instead of answered as a duplicate."""

from __future__ import annotations

import random

from scrawn.server.events.intake import _fingerprint, basic_fingerprint
from scrawn.server.pricing.pricer import Debit

TEXTS = ["", "u", "user-1", "o'brien", 'say "hi"', "naïve ✓", "back\\slash", "tab\tnew\nline", "\x7f"]


def test_a_basic_events_fingerprint_is_the_general_one() -> None:
    rng = random.Random(5)
    for _ in range(2_000):
        event_type, user, reported = rng.choice([0, 1, 2]), rng.choice(TEXTS), rng.randrange(-1, 2**31)
        eid = rng.choice([None, "00000000-0000-4000-8000-000000000001"])
        debit = Debit(rng.choice(["amount", "tag", "expr"]), rng.choice([*TEXTS, "12.5", "0"]))
        metadata = rng.choice([None, '{"a": 1}', *TEXTS])
        usage = rng.choice(["RAW", "MIDDLEWARE_CALL"])
        content = {"type": event_type, "user": user, "reported": reported, "eventId": eid}
        content |= {"debit": debit.canonical(), "metadata": metadata, "usageType": usage}
        fast = basic_fingerprint(event_type, user, reported, eid, debit, metadata, usage)
        assert fast == _fingerprint(content)
