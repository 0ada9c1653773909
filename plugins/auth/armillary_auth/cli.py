"""`armillary auth new-key` and `armillary auth hash-key`: make a key and the
`key_hash` that goes in plugins.toml."""

from __future__ import annotations

import sys

import click

from armillary_auth.keys import hash_key, new_key


@click.group()
def auth() -> None:
    """API keys for the auth plugin."""


@auth.command("new-key")
@click.option("--name", default="my-client", show_default=True)
@click.option("--scope", "scopes", multiple=True, default=("read", "submit"),
              show_default=True)
def new_key_command(name: str, scopes: tuple[str, ...]) -> None:
    """Print a fresh key (give it to the client) and its plugins.toml entry."""
    key = new_key()
    click.echo(f"key (shown once; give it to {name}): {key}", err=True)
    click.echo(f'{{ name = "{name}", key_hash = "{hash_key(key)}", '
               f'scopes = [{", ".join(repr(s).replace(chr(39), chr(34)) for s in scopes)}] }}')


@auth.command("hash-key")
@click.argument("key", required=False)
def hash_key_command(key: str | None) -> None:
    """Print KEY's key_hash (read from stdin when not given, so it stays out of the
    shell history)."""
    if key is None:
        key = sys.stdin.readline().strip()
    if not key:
        raise click.UsageError("no key given")
    click.echo(hash_key(key))
