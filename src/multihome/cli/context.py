"""What every `multihome` subcommand shares: the store chosen by `--store` / `$MULTIHOME_STORE`."""

from __future__ import annotations

import click

from multihome.store import Store, StoreError, StoreUnavailable, names, store_path
from multihome.stores import open_store


def get_store(ctx: click.Context | None = None) -> Store:
    """The store for this invocation, opened once and closed when the command ends."""
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    root.ensure_object(dict)
    obj: dict[str, object] = root.obj
    store = obj.get("store_handle")
    if store is None:
        path = obj.get("store")
        where = store_path(path if isinstance(path, str) else None)
        try:
            store = open_store(where)
        except StoreUnavailable as e:  # its message names the file already
            raise click.ClickException(str(e)) from e
        except (ValueError, OSError, StoreError) as e:
            raise click.ClickException(f"cannot open the store {where}: {e}") from e
        obj["store_handle"] = store
        root.call_on_close(store.close)
    assert isinstance(store, Store)
    return store


def namespace_callback(ctx: click.Context, param: click.Parameter,
                       value: str | None) -> str | None:
    """`-n NS`: a value that is not a DNS-1123 label fails in one line, before any lookup."""
    if value is not None:
        problem = names.label_problem(value, "namespace")
        if problem:
            raise click.ClickException(problem)
    return value


def name_callback(ctx: click.Context, param: click.Parameter, value: object) -> object:
    """Object names given as arguments (one, or several): DNS-1123 subdomains."""
    for item in value if isinstance(value, tuple) else (value,):
        if item is not None:
            problem = names.subdomain_problem(item, "name")
            if problem:
                raise click.ClickException(problem)
    return value
