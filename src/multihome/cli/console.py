"""`multihome console` (the web console) and `multihome topology` (the node picture)."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import click

from multihome.cli.context import get_store

DEFAULT_LISTEN = "127.0.0.1:8080"


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.UsageError(f'--listen "{text}" is not HOST:PORT')
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
@click.option("--node-netns", default=None, metavar="NAME",
              help="A network namespace that plays the node (as `node --netns`).")
@click.pass_context
def console_cmd(ctx: click.Context, listen: str, token_file: str | None,
                node_netns: str | None) -> None:
    """Serve the web console (plain HTTP) on the same store as the CLI."""
    from werkzeug.serving import make_server

    from multihome.console.app import create_app

    host, port = parse_listen(listen)
    if not is_loopback(host) and not token_file:
        raise click.ClickException(f"refusing to serve on {host} without --token-file: "
                                   "only loopback may go without a token")
    token = read_token(token_file) if token_file else None
    path = ctx.find_root().obj.get("store")
    netns_path = None
    if node_netns:
        from multihome.net.netns import named_path

        netns_path = named_path(node_netns)
    app = create_app(path if isinstance(path, str) else None, token, node_netns=netns_path)
    server = make_server(host, port, app, threaded=True)
    click.echo(f"multihome console on http://{host}:{server.server_port}/"
               + (" (token required)" if token else ""), err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


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
