"""`multihome console` (the web console) and `multihome topology` (the node picture)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from waitress.server import BaseWSGIServer, create_server

from multihome.cli.context import get_store
from multihome.console.app import MAX_BODY, create_app
from multihome.console.guard import Listen, bind, is_loopback
from multihome.net.netns import named_path

DEFAULT_LISTEN = "127.0.0.1:8080"
SERVER_THREADS = 4
MAX_CONNECTIONS = 64
CHANNEL_TIMEOUT_S = 30
MAX_HEADER = 64 << 10


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.UsageError(f'--listen "{text}" is not HOST:PORT')
    return host.strip("[]") or "127.0.0.1", int(port)


def read_token(path: str) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as e:
        raise click.ClickException(f"cannot read the token file {path}: {e.strerror}") from e
    if not token:
        raise click.ClickException(f"the token file {path} is empty")
    return token


@click.command("console")
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT",
              help="Address to serve on; anything but loopback needs --token-file.")
@click.option("--token-file", default=None, metavar="FILE",
              help="File holding the token every request must carry.")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="Another host name the console is reached by (repeatable); requests "
              "naming any other host are refused (DNS rebinding).")
@click.option("--node-netns", default=None, metavar="NAME",
              help="A network namespace that plays the node (as `node --netns`).")
@click.pass_context
def console_cmd(ctx: click.Context, listen: str, token_file: str | None,
                allow_hosts: tuple[str, ...], node_netns: str | None) -> None:
    """Serve the web console (plain HTTP, waitress) on the same store as the CLI."""
    host, port = parse_listen(listen)
    if not is_loopback(host) and not token_file:
        raise click.ClickException(f"refusing to serve on {host} without --token-file: "
                                   "only loopback may go without a token")
    token = read_token(token_file) if token_file else None
    path = ctx.find_root().obj.get("store")
    netns_path = named_path(node_netns) if node_netns else None
    names = frozenset(n.lower() for n in allow_hosts)
    app = create_app(path if isinstance(path, str) else None, token, node_netns=netns_path,
                     listen=Listen(host, port or None, names))
    # waitress: a fixed pool of worker threads, a bound on open connections, idle ones
    # closed, and bodies over the app's limit refused before they are read (413)
    server = create_server(
        app, host=host, port=port, threads=SERVER_THREADS, connection_limit=MAX_CONNECTIONS,
        channel_timeout=CHANNEL_TIMEOUT_S, max_request_body_size=MAX_BODY,
        max_request_header_size=MAX_HEADER, clear_untrusted_proxy_headers=True, ident="")
    # one HOST:PORT is one socket (a MultiSocketServer only comes from `listen=` lists)
    assert isinstance(server, BaseWSGIServer)
    bound = int(server.getsockname()[1])
    bind(app, Listen(host, bound, names))
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"multihome console on http://{shown}:{bound}/"
               + (" (token required)" if token else ""), err=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


@click.command("topology")
@click.option("-o", "--output", "fmt", type=click.Choice(["svg", "png"]), default="svg",
              show_default=True)
@click.option("-f", "--file", "out_file", default="-", metavar="FILE",
              help="Where to write the picture (default stdout).")
@click.pass_context
def topology_cmd(ctx: click.Context, fmt: str, out_file: str) -> None:
    """Draw the node network: bridges, ports, uplinks, VLANs, pods, VMs, the external net."""
    from multihome.console import topology

    svg = topology.to_svg(topology.current(get_store(ctx)))
    data = svg.encode() if fmt == "svg" else topology.svg_to_png(svg)
    if out_file == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        Path(out_file).write_bytes(data)
