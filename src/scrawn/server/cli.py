"""The ``scrawn`` command (Typer + Rich): a thin root that mounts each domain's commands. Registration order
is the order ``--help`` lists them in.

Each domain's module is imported only when its command runs (or its own ``--help`` is asked for): the root
lists them from the table below, so ``scrawn --help`` loads none of the server. A test keeps each listed
line equal to the command's own first help line."""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

# name: (module, attribute, the first line of its help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": (
        "scrawn.server.serve",
        "serve",
        "Run the server (gRPC, Connect, gRPC-web and the JSON API on one port).",
    ),
    "init": (
        "scrawn.server.projects.cli",
        "init",
        "Create the schema if needed, a project, and its first dashboard key (printed once).",
    ),
    "migrate": (
        "scrawn.server.serve",
        "migrate_command",
        "Apply database migrations (Alembic) up to the latest.",
    ),
    "backup": (  # docs/operations.md
        "scrawn.server.backup",
        "backup",
        "Copy a SQLite database and its secret file while the server runs (PostgreSQL: use pg_dump).",
    ),
    "doctor": (
        "scrawn.server.doctor",
        "doctor",
        "Check the configuration, database, migrations, secret, payment providers and webhook endpoints.",
    ),
    "users": (
        "scrawn.server.wallets.cli",
        "users",
        "Users and their balances (minor units; negative = owed).",
    ),
    "explain": (
        "scrawn.server.events.cli",
        "explain",
        "Why was this event charged what it was? Shows the debit and what priced it.",
    ),
    "demo": (
        "scrawn.server.demo",
        "demo",
        "Run a server on a throwaway database and bill events of every kind through real clients.",
    ),
    "keys": ("scrawn.server.projects.cli", "keys_app", "Manage API keys."),
    "tags": ("scrawn.server.pricing.cli", "tags_app", "Manage price tags."),
    "expressions": ("scrawn.server.pricing.cli", "expressions_app", "Manage named pricing expressions."),
    "webhooks": (
        "scrawn.server.webhooks.cli",
        "webhooks_app",
        "Outbound webhooks: the endpoint, queued and delivered messages, replay.",
    ),
    "payments": (  # docs/payments.md
        "scrawn.server.payments.cli",
        "payments_app",
        "Checkout providers (Lemon Squeezy, Stripe) and checkouts.",
    ),
    "projects": (  # docs/usage.md
        "scrawn.server.projects.cli",
        "projects_app",
        "Projects: name, currency, amount unit, the USD rate for LLM prices, the late-event window, the "
        "time zone.",
    ),
    "prices": (  # docs/usage.md
        "scrawn.server.usage.cli",
        "prices_app",
        "LLM model prices: the built-in book and the project's overrides.",
    ),
    "usage": ("scrawn.server.usage.cli", "usage_app", "Usage records: summaries and time series."),
    "events": (  # docs/cli.md
        "scrawn.server.events.cli",
        "events_app",
        "Billed events: tail (and follow), export as CSV, void a wrong one, the quarantine.",
    ),
    "wallets": (  # docs/wallets.md
        "scrawn.server.wallets.cli",
        "wallets_app",
        "Prepaid wallets: balances, holds, credits with an expiry, debits, spend controls.",
    ),
}


class _Listed(TyperCommand):
    """A command's line in the root's help, standing in until the command itself is needed."""


def load_command(name: str) -> Any:
    module, attribute, line = COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    if not isinstance(target, typer.Typer):
        function, target = target, typer.Typer(add_completion=False)
        target.command(name=name, help=None if function.__doc__ else line)(function)
    command = typer.main.get_command(target)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        eager = dict(self.commands)  # anything registered on ``app`` directly comes after the table
        self.commands = {name: _Listed(name, help=line) for name, (_, _, line) in COMMANDS.items()}
        self.commands.update(eager)

    # Typer's click (vendored in newer versions) is reached through Any: the types follow the version.
    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, _Listed) and name is not None:
            command = self.commands[name] = load_command(name)
        return name, command, rest


app = typer.Typer(
    cls=LazyGroup,
    help="Scrawn: self-hosted usage-based billing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # scrawn.server.entry prints errors; tracebacks only with --debug
)


def _version(value: bool) -> None:
    if value:
        from scrawn._version import __version__

        typer.echo(f"scrawn {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks (also accepted after the command).")
    ] = False,
) -> None:
    """Scrawn: self-hosted usage-based billing."""


def main() -> None:
    from scrawn.server.entry import main as entry

    entry()


if __name__ == "__main__":
    main()
