"""What every `multihome` subcommand shares: the store chosen by `--store` / `$MULTIHOME_STORE`."""

from __future__ import annotations

import click

from multihome.store import Store, StoreError, open_store, store_path


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
        except (ValueError, OSError, StoreError) as e:
            raise click.ClickException(f"cannot open the store {where}: {e}") from e
        obj["store_handle"] = store
        root.call_on_close(store.close)
    assert isinstance(store, Store)
    return store
