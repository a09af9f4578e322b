"""Pricing configuration that cannot break billing (docs/pricing-safety.md): writes naming a missing tag or
expression, cycles through ``expr()``, and deletes of names still in use are refused over the JSON API and
the CLI with the same message, changing nothing; a delete of a recently used name is allowed but counted
and warned about; a deleted name can be created again; a check and the write it allows never race.
Against a real server on SQLite and PostgreSQL, plus the pure rules."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from scrawn import Scrawn, expr, mul, tag
from scrawn.errors import FailedPreconditionError, ValidationError
from scrawn.server.db.schema import event_prices, events, expressions, tags
from scrawn.server.pricing import references
from scrawn.server.pricing.expression import parse
from scrawn.server.pricing.references import Catalog
from tests.conftest import ServerHandle, run_async
from tests.scenarios.catalog_rows import store_unchecked_expressions

# ------------------------------------------------------------------------------------ the pure rules


def catalog_of(tag_names: set[str], exprs: dict[str, str], prices: dict[str, str] | None = None) -> Catalog:
    return Catalog(
        tags=frozenset(tag_names),
        expressions={n: parse(t) for n, t in exprs.items()},
        event_prices={n: parse(t) for n, t in (prices or {}).items()},
    )


def test_find_cycle_names_the_shortest_chain() -> None:
    rules = catalog_of({"T"}, {"A": "tag(T)", "B": "expr(A)", "C": "mul(expr(B), 2)", "D": "expr(A)"})
    assert references.find_cycle("A", parse("expr(C)"), rules) == ["A", "C", "B", "A"]
    assert references.find_cycle("A", parse("add(expr(C), expr(D))"), rules) == ["A", "D", "A"]
    assert references.find_cycle("S", parse("mul(2, expr(S))"), rules) == ["S", "S"]
    assert references.find_cycle("A", parse("add(tag(T), 1)"), rules) is None
    assert references.find_cycle("E", parse("add(expr(C), expr(D))"), rules) is None  # shared, no cycle
    # a cycle elsewhere (stored by an older server) is not this write's cycle
    legacy = catalog_of(set(), {"X": "expr(Y)", "Y": "expr(X)"})
    assert references.find_cycle("Z", parse("expr(X)"), legacy) is None
    assert references.find_cycle("X", parse("expr(Y)"), legacy) == ["X", "Y", "X"]


def test_check_known_names_every_missing_name() -> None:
    rules = catalog_of({"T"}, {"A": "tag(T)"})
    references.check_known(parse("add(tag(T), expr(A))"), rules)
    with pytest.raises(ValidationError) as one:
        references.check_known(parse("add(tag(T), tag(NOPE))"), rules)
    assert (one.value.field, one.value.message) == (
        "expression",
        "Validation failed: expression: names unknown tag: NOPE",
    )
    with pytest.raises(ValidationError) as many:
        references.check_known(parse("add(tag(Z), tag(Y), expr(W), expr(A))"), rules)
    assert many.value.message == (
        "Validation failed: expression: names unknown tags: Y, Z and unknown expression: W"
    )
    # the expression being written may name itself here: that is reported as a cycle instead
    references.check_known(parse("expr(S)"), rules, writing="S")


def test_referrers_list_expressions_then_event_prices() -> None:
    rules = catalog_of(
        {"T"},
        {"B": "tag(T)", "A": "mul(tag(T), expr(B))", "C": "1"},
        {"doc.processed": "mul(quantity(), tag(T))", "other": "expr(B)"},
    )
    assert references.referrers("tag", "T", rules) == [
        "expression A",
        "expression B",
        "event price doc.processed",
    ]
    assert references.referrers("expression", "B", rules) == ["expression A", "event price other"]
    assert references.referrers("expression", "C", rules) == []
    with pytest.raises(FailedPreconditionError) as used:
        references.check_unused("tag", "T", rules)
    assert used.value.message == (
        "Tag T is used by expression A, expression B, event price doc.processed; change those first"
    )
    assert used.value.field == "key"


@pytest.mark.parametrize(
    ("pricing", "kind", "name", "used"),
    [
        ({"tag": "T", "version": 1, "price": "1"}, "tag", "T", True),
        ({"tag": "TT", "version": 1, "price": "1"}, "tag", "T", False),
        ({"expr": "tag(T)", "tags": {"T": 2}, "expressions": {}}, "tag", "T", True),
        ({"expr": "expr(E)", "tags": {"U": 1}, "expressions": {"E": 1}}, "expression", "E", True),
        ({"expr": "expr(E)", "tags": {"E": 1}, "expressions": {}}, "expression", "E", False),
        ({"expr": "expr(E)", "tags": {}, "expressions": {"E": 1}}, "tag", "E", False),
        ({"amount": "12"}, "tag", "T", False),
        (
            {"eventType": "doc", "eventPrice": 1, "expr": "tag(T)", "tags": {"T": 1}, "expressions": {}},
            "tag",
            "T",
            True,
        ),
        ({"eventType": "doc", "eventPrice": None}, "tag", "T", False),
        ({"input": {"amount": "1"}, "output": {"tag": "T", "version": 3, "price": "2"}}, "tag", "T", True),
        ({"input": {"model": "T", "source": "book"}, "output": {"amount": "0"}}, "tag", "T", False),
        ({"inputCache": {"expr": "expr(E)", "tags": {}, "expressions": {"E": 4}}}, "expression", "E", True),
    ],
)
def test_priced_with_reads_every_recorded_shape(
    pricing: Any, kind: references.Kind, name: str, used: bool
) -> None:
    assert references.priced_with(pricing, kind, name) is used


# ------------------------------------------------------------------------------------- the server


@dataclass
class Answer:
    """What the JSON API or the CLI answered."""

    status: int  # HTTP status, or the CLI's exit code
    body: dict[str, Any]  # the JSON body; for the CLI {"lines": [...]}


class Api:
    def __init__(self, server: ServerHandle) -> None:
        self.http = httpx.Client(
            base_url=server.base_url, headers={"authorization": f"Bearer {server.dash_key}"}, timeout=60
        )

    def post(self, path: str, body: dict[str, Any]) -> Answer:
        res = self.http.post(path, json=body)
        return Answer(res.status_code, res.json())

    def delete(self, path: str) -> Answer:
        res = self.http.delete(path)
        return Answer(res.status_code, res.json())

    def tag(self, key: str, price: str = "1") -> None:
        res = self.http.post("/api/v1/tags", json={"key": key, "price": price})
        assert res.status_code in (200, 201), res.text

    def expression(self, name: str, text: str) -> dict[str, Any]:
        res = self.http.post("/api/v1/expressions", json={"name": name, "expression": text})
        assert res.status_code in (200, 201), res.text
        return dict(res.json())

    def event_price(self, event_type: str, text: str) -> None:
        res = self.http.post("/api/v1/event-prices", json={"type": event_type, "expression": text})
        assert res.status_code in (200, 201), res.text


@pytest.fixture(scope="module")
def api(module_server: ServerHandle) -> Iterator[Api]:
    made = Api(module_server)
    yield made
    made.http.close()


CliRun = Callable[..., Answer]


@pytest.fixture
def cli(module_server: ServerHandle, monkeypatch: pytest.MonkeyPatch) -> CliRun:
    """``scrawn …`` in this process (a subprocess per call costs seconds of imports), on a narrow console:
    an error must still be one line."""
    from scrawn.server import cli as scrawn_cli
    from scrawn.server import cli_support

    for name in [k for k in os.environ if k.startswith("SCRAWN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SCRAWN_DATABASE_URL", module_server.database_url)
    monkeypatch.setattr(cli_support.console, "width", 60)
    runner = CliRunner()

    def run(*args: str) -> Answer:
        done = runner.invoke(scrawn_cli.app, [*args, "--project", module_server.project_id])
        if done.exception is not None and not isinstance(done.exception, SystemExit):
            raise done.exception
        out = done.stdout if done.exit_code == 0 else done.stderr  # errors go to stderr, answers to stdout
        return Answer(done.exit_code, {"lines": out.strip().splitlines()})

    return run


def name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8].upper()}"


def snapshot(server: ServerHandle) -> list[tuple[Any, ...]]:
    """Every catalog row of the project, every version: a refused write must add none."""

    async def read() -> list[tuple[Any, ...]]:
        db = server.db()
        try:
            async with db.read() as conn:
                rows: list[tuple[Any, ...]] = []
                for table, key in ((tags, "key"), (expressions, "name"), (event_prices, "event_type")):
                    found = await conn.execute(
                        select(table)
                        .where(table.c.project_id == server.project_id)
                        .order_by(table.c[key], table.c.version)
                    )
                    rows += [(table.name, *r) for r in found]
                return rows
        finally:
            await db.dispose()

    result: list[tuple[Any, ...]] = run_async(read())
    return result


def debit_of(server: ServerHandle, event_id: str) -> Decimal:
    async def read() -> Decimal:
        db = server.db()
        try:
            async with db.read() as conn:
                return Decimal(await conn.scalar(select(events.c.debit).where(events.c.id == event_id)))
        finally:
            await db.dispose()

    result: Decimal = run_async(read())
    return result


def assert_refused(answer: Answer, status: int, code: str, field: str, message: str) -> None:
    assert answer.status == status, answer
    assert answer.body == {"code": code, "message": message, "field": field}


def assert_cli_refused(answer: Answer, message: str) -> None:
    assert answer.status == 1, answer
    assert answer.body["lines"] == [f"error: {message}"]


def refused_everywhere(
    server: ServerHandle,
    api_call: Callable[[], Answer],
    cli_call: Callable[[], Answer] | None,
    status: int,
    code: str,
    field: str,
    message: str,
) -> None:
    """The API and the CLI refuse the same way, and nothing in storage changes."""
    before = snapshot(server)
    assert_refused(api_call(), status, code, field, message)
    if cli_call is not None:
        assert_cli_refused(cli_call(), message)
    assert snapshot(server) == before


def test_a_missing_tag_is_refused(module_server: ServerHandle, api: Api, cli: CliRun) -> None:
    known, missing, new = name("KNOWN"), name("API_CALL"), name("TOTAL")
    api.tag(known)
    text = f"add(tag({known}), tag({missing}))"
    message = f"Validation failed: expression: names unknown tag: {missing}"
    refused_everywhere(
        module_server,
        lambda: api.post("/api/v1/expressions", {"name": new, "expression": text}),
        lambda: cli("expressions", "set", new, text),
        400,
        "invalid_argument",
        "expression",
        message,
    )
    refused_everywhere(
        module_server,
        lambda: api.post(
            "/api/v1/event-prices", {"type": "doc.missing", "expression": f"mul(quantity(), tag({missing}))"}
        ),
        None,  # event prices have no CLI command
        400,
        "invalid_argument",
        "expression",
        message,
    )


def test_a_missing_expression_is_refused(module_server: ServerHandle, api: Api, cli: CliRun) -> None:
    missing, new = name("FOO"), name("BAR")
    message = f"Validation failed: expression: names unknown expression: {missing}"
    refused_everywhere(
        module_server,
        lambda: api.post("/api/v1/expressions", {"name": new, "expression": f"mul(expr({missing}), 2)"}),
        lambda: cli("expressions", "set", new, f"mul(expr({missing}), 2)"),
        400,
        "invalid_argument",
        "expression",
        message,
    )
    refused_everywhere(
        module_server,
        lambda: api.post("/api/v1/event-prices", {"type": "doc.missing", "expression": f"expr({missing})"}),
        None,
        400,
        "invalid_argument",
        "expression",
        message,
    )


def test_a_cycle_through_three_expressions_is_refused(
    module_server: ServerHandle, api: Api, cli: CliRun
) -> None:
    t, a, b, c = name("UNIT"), name("A"), name("B"), name("C")
    api.tag(t, "2")
    api.expression(a, f"tag({t})")
    api.expression(b, f"add(expr({a}), 1)")
    api.expression(c, f"mul(expr({b}), 3)")
    message = f"expression: would form a cycle: {a} -> {c} -> {b} -> {a}"
    refused_everywhere(
        module_server,
        lambda: api.post("/api/v1/expressions", {"name": a, "expression": f"add(tag({t}), expr({c}))"}),
        lambda: cli("expressions", "set", a, f"add(tag({t}), expr({c}))"),
        409,
        "failed_precondition",
        "expression",
        message,
    )
    # the chain still prices (a is unchanged): (2 + 1) * 3
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        result = client.basic_usage_event_consumer(user_id=name("cycle-user"), debit=expr(c))
    assert debit_of(module_server, result.event_id) == Decimal(9)


def test_a_self_reference_is_refused(module_server: ServerHandle, api: Api, cli: CliRun) -> None:
    new, existing = name("SELF"), name("SELFX")
    refused_everywhere(
        module_server,
        lambda: api.post("/api/v1/expressions", {"name": new, "expression": f"mul(2, expr({new}))"}),
        lambda: cli("expressions", "set", new, f"mul(2, expr({new}))"),
        409,
        "failed_precondition",
        "expression",
        f"expression: would form a cycle: {new} -> {new}",
    )
    api.expression(existing, "1")
    refused_everywhere(
        module_server,
        lambda: api.post(
            "/api/v1/expressions", {"name": existing, "expression": f"add(1, expr({existing}))"}
        ),
        lambda: cli("expressions", "set", existing, f"add(1, expr({existing}))"),
        409,
        "failed_precondition",
        "expression",
        f"expression: would form a cycle: {existing} -> {existing}",
    )


def test_a_tag_in_use_cannot_be_deleted(module_server: ServerHandle, api: Api, cli: CliRun) -> None:
    t, total, event_type = name("API_CALL"), name("TOTAL"), f"document.{uuid.uuid4().hex[:6]}"
    api.tag(t)
    api.expression(total, f"mul(tag({t}), 2)")
    message = f"Tag {t} is used by expression {total}; change those first"
    refused_everywhere(
        module_server,
        lambda: api.delete(f"/api/v1/tags/{t}"),
        lambda: cli("tags", "delete", t),
        409,
        "failed_precondition",
        "key",
        message,
    )
    api.event_price(event_type, f"mul(quantity(), tag({t}))")
    message = f"Tag {t} is used by expression {total}, event price {event_type}; change those first"
    refused_everywhere(
        module_server,
        lambda: api.delete(f"/api/v1/tags/{t}"),
        lambda: cli("tags", "delete", t),
        409,
        "failed_precondition",
        "key",
        message,
    )
    # once the expression no longer names it, only the event price holds it
    api.expression(total, "2")
    refused_everywhere(
        module_server,
        lambda: api.delete(f"/api/v1/tags/{t}"),
        lambda: cli("tags", "delete", t),
        409,
        "failed_precondition",
        "key",
        f"Tag {t} is used by event price {event_type}; change those first",
    )
    res = api.http.delete(f"/api/v1/event-prices/{event_type}")
    assert res.status_code == 204, res.text
    done = cli("tags", "delete", t)
    assert (done.status, done.body["lines"]) == (0, [f"deleted {t}"])  # no recent events: no warning


def test_an_expression_in_use_cannot_be_deleted(module_server: ServerHandle, api: Api, cli: CliRun) -> None:
    base, doc, event_type = name("BASE"), name("DOC"), f"page.{uuid.uuid4().hex[:6]}"
    api.expression(base, "5")
    api.expression(doc, f"add(expr({base}), 1)")
    api.event_price(event_type, f"mul(quantity(), expr({base}))")
    refused_everywhere(
        module_server,
        lambda: api.delete(f"/api/v1/expressions/{base}"),
        lambda: cli("expressions", "delete", base),
        409,
        "failed_precondition",
        "name",
        f"Expression {base} is used by expression {doc}, event price {event_type}; change those first",
    )
    # the referrer can go first: then the name is free
    assert api.delete(f"/api/v1/expressions/{doc}") == Answer(200, {"deleted": doc, "recentEvents": 0})
    assert api.http.delete(f"/api/v1/event-prices/{event_type}").status_code == 204
    assert api.delete(f"/api/v1/expressions/{base}") == Answer(200, {"deleted": base, "recentEvents": 0})


def test_a_deleted_name_is_missing_and_can_be_created_again(api: Api, cli: CliRun) -> None:
    t, e, user = name("GONE"), name("AGAIN"), name("TOTAL")
    api.tag(t, "1")
    api.expression(e, f"tag({t})")
    assert api.delete(f"/api/v1/expressions/{e}").status == 200
    assert api.delete(f"/api/v1/tags/{t}").status == 200
    # a deleted (latest version) name counts as missing
    assert_refused(
        api.post("/api/v1/expressions", {"name": user, "expression": f"expr({e})"}),
        400,
        "invalid_argument",
        "expression",
        f"Validation failed: expression: names unknown expression: {e}",
    )
    assert_cli_refused(
        cli("expressions", "set", e, f"tag({t})"),
        f"Validation failed: expression: names unknown tag: {t}",
    )
    # created again: a new version after the deleted one
    again = cli("tags", "set", t, "4")
    assert (again.status, again.body["lines"]) == (0, [f"{t} = 4 (version 3)"])
    created = cli("expressions", "set", e, f"tag({t})")
    assert (created.status, created.body["lines"]) == (0, [f"{e} = tag({t}) (version 3)"])
    assert api.expression(user, f"expr({e})")["version"] == 1


def test_deleting_a_recently_used_name_is_allowed_counted_and_warned(
    module_server: ServerHandle, api: Api, cli: CliRun
) -> None:
    t, e = name("RECENT"), name("RECENT_EXPR")
    api.tag(t, "2")
    api.expression(e, f"add(tag({t}), 1)")
    with (
        Scrawn(module_server.live_key, module_server.base_url) as live,
        Scrawn(module_server.test_key, module_server.base_url) as test,
    ):
        user = name("recent-user")
        live.basic_usage_event_consumer(user_id=user, debit=tag(t))
        live.basic_usage_event_consumer(user_id=user, debit=tag(t))
        test.basic_usage_event_consumer(user_id=user, debit=tag(t))  # the other mode counts too
        live.basic_usage_event_consumer(user_id=user, debit=expr(e))  # through the expression
        live.basic_usage_event_consumer(user_id=user, debit=mul(tag(t), 3))  # an inline expression
        live.basic_usage_event_consumer(user_id=user, debit=7)  # an amount: not a use

    deleted = cli("expressions", "delete", e)
    assert deleted.status == 0, deleted
    assert deleted.body["lines"] == [
        f"deleted {e}",
        f"warning: expression {e} was deleted although 1 event used it in the last 7 days; future events "
        "naming it will be kept in quarantine until it is created again",
    ]
    before = snapshot(module_server)
    assert api.delete(f"/api/v1/tags/{t}") == Answer(200, {"deleted": t, "recentEvents": 5})
    after = snapshot(module_server)
    [row] = [r for r in after if r not in before]  # the delete is the deleted version row, with its time
    assert row[:4] == ("tags", module_server.project_id, t, 2) and row[5] is True and row[6] > 0
    assert f"tag {t} was deleted although 5 events used it in the last 7 days" in module_server.log()


def test_a_check_and_its_write_never_race(module_server: ServerHandle, api: Api) -> None:
    """Create an expression naming X while X is deleted, many times, the two requests released together:
    either the expression is stored and the delete refused, or the delete wins and the expression is
    refused; never both (that would leave an expression naming a deleted tag)."""
    pairs = [(name("RACE_TAG"), name("RACE_EXPR")) for _ in range(40)]
    for t, _ in pairs:
        api.tag(t)
    auth = {"authorization": f"Bearer {module_server.dash_key}"}
    clients = [httpx.Client(base_url=module_server.base_url, headers=auth, timeout=60) for _ in range(2)]
    for c in clients:  # connections open before the race starts
        assert c.get("/api/v1/tags").status_code == 200
    together = threading.Barrier(2)

    def create(t: str, e: str) -> int:
        together.wait()
        return clients[0].post("/api/v1/expressions", json={"name": e, "expression": f"tag({t})"}).status_code

    def delete(t: str) -> int:
        together.wait()
        return clients[1].delete(f"/api/v1/tags/{t}").status_code

    outcomes = []
    with ThreadPoolExecutor(2) as pool:
        for t, e in pairs:
            made, gone = pool.submit(create, t, e), pool.submit(delete, t)
            outcomes.append((made.result(), gone.result()))
    for c in clients:
        c.close()
    assert all(o in ((201, 409), (400, 200)) for o in outcomes), outcomes
    live_tags = {t["key"] for t in api.http.get("/api/v1/tags").json()["tags"]}
    live_exprs = {x["name"] for x in api.http.get("/api/v1/expressions").json()["expressions"]}
    for (t, e), (made, _) in zip(pairs, outcomes, strict=True):
        assert (e in live_exprs, t in live_tags) == ((True, True) if made == 201 else (False, False))


def test_the_real_command_prints_one_line_and_exits_non_zero(module_server: ServerHandle, api: Api) -> None:
    t, e = name("REAL"), name("REAL_USER")
    api.tag(t)
    api.expression(e, f"tag({t})")
    env = module_server.env | {"COLUMNS": "40"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "scrawn.server.cli",
            "tags",
            "delete",
            t,
            "--project",
            module_server.project_id,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"error: Tag {t} is used by expression {e}; change those first"]
    assert done.stdout == ""


def test_stored_cycles_do_not_block_unrelated_writes(module_server: ServerHandle, api: Api) -> None:
    """A cycle an older server stored is left alone: other writes go on; it can be broken by a write."""
    x, y = name("OLDX"), name("OLDY")
    store_unchecked_expressions(module_server, {x: f"expr({y})", y: f"expr({x})"})
    api.expression(name("FREE"), "1")
    assert_refused(
        api.post("/api/v1/expressions", {"name": x, "expression": f"add(1, expr({y}))"}),
        409,
        "failed_precondition",
        "expression",
        f"expression: would form a cycle: {x} -> {y} -> {x}",
    )
    assert api.expression(x, "1")["version"] == 2  # breaks it


def test_server_log_is_clean(module_server: ServerHandle) -> None:
    assert "Traceback" not in module_server.log()
