"""The ``scrawn`` command (Typer + Rich): a thin root that mounts each domain's commands. Registration order
is the order ``--help`` lists them in."""

from __future__ import annotations

import typer

from scrawn.server.backup import backup
from scrawn.server.demo import demo
from scrawn.server.events.cli import events_app, explain
from scrawn.server.payments.cli import payments_app
from scrawn.server.pricing.cli import expressions_app, tags_app
from scrawn.server.projects.cli import init, keys_app, projects_app
from scrawn.server.serve import migrate_command, serve
from scrawn.server.usage.cli import prices_app, usage_app
from scrawn.server.wallets.cli import users, wallets_app
from scrawn.server.webhooks.cli import webhooks_app

app = typer.Typer(help="Scrawn: self-hosted usage-based billing.", no_args_is_help=True, add_completion=False)
app.command()(serve)
app.command()(init)
app.command(name="migrate")(migrate_command)
app.command()(backup)  # docs/operations.md
app.command()(users)
app.command()(explain)
app.command(help="Run a server on a throwaway database and bill events of every kind through real clients.")(
    demo
)
app.add_typer(keys_app, name="keys")
app.add_typer(tags_app, name="tags")
app.add_typer(expressions_app, name="expressions")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(payments_app, name="payments")  # docs/payments.md
app.add_typer(projects_app, name="projects")  # docs/usage.md
app.add_typer(prices_app, name="prices")  # docs/usage.md
app.add_typer(usage_app, name="usage")
app.add_typer(events_app, name="events")  # docs/cli.md
app.add_typer(wallets_app, name="wallets")  # docs/wallets.md


def main() -> None:
    app()


if __name__ == "__main__":
    main()
