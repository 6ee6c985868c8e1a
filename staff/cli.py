"""``raporto staff``: create accounts and reset passwords from the command line."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from bot.app import services
from staff import accounts, audit
from staff.roles import Role
from storage.models import utcnow


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    password: str = click.prompt(
        "Password", hide_input=True, confirmation_prompt="Repeat the password"
    )
    return password


@click.group("staff")
def staff() -> None:
    """Staff desk accounts."""


@staff.command("create")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option(
    "--language",
    type=click.Choice(list(accounts.DESK_LANGUAGES)),
    default="sq",
    show_default=True,
    help="The desk language.",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
@with_appcontext
def create(role: str, email: str, name: str, language: str, password_stdin: bool) -> None:
    """Create a staff account (the password is asked twice, hidden)."""
    password = _read_password(password_stdin)
    problem = accounts.password_problem(password)
    if problem:
        raise click.ClickException(f"the password needs {problem}")
    with services().uow() as db:
        try:
            user = accounts.create_user(
                db, email=email, name=name, role=role, password=password, language=language
            )
        except accounts.AccountError as exc:
            raise click.ClickException(str(exc)) from exc
        db.flush()
        audit.record(
            db, "user.create", email="cli", detail={"user": user.id, "role": role, "via": "cli"}
        )
    click.echo(f"created {role} account {user.email}")


@staff.command("reset-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
@with_appcontext
def reset_password(email: str, password_stdin: bool) -> None:
    """Set a new password for EMAIL, unlock the account and end its sessions."""
    password = _read_password(password_stdin)
    with services().uow() as db:
        user = accounts.by_email(db, email)
        if user is None:
            raise click.ClickException(f"no account {accounts.normalize_email(email)}")
        try:
            accounts.set_password(db, user, password, utcnow())
        except accounts.AccountError as exc:
            raise click.ClickException(str(exc)) from exc
        audit.record(db, "user.password_reset", email="cli", detail={"user": user.id, "via": "cli"})
    click.echo(f"new password set for {user.email}")
