"""The CNI shim: forwards one CNI call to the multihome daemon over its unix socket.

Standard library only, and only its C parts on the hot path (`_socket`, `_json`): the
shim runs once per CNI call and its start-up is on every pod's critical path; `socket`
and `json` would pull in `enum` and `re`, which doubles the interpreter's start, and `os`
(the `posix` module underneath it is built in) and `__future__` cost 2-3 ms more. So the
annotations are strings and the environment is read as bytes. The
installed executables (`multihome` and each built-in plugin type) call :func:`forward`
and, when it returns, run the plugin in-process (multihome.plugins.exe); a standalone
executable (no multihome on the host) calls :func:`main`. The daemon imports the
constants. Nothing here imports multihome: the shim's source is copied whole into the
standalone executables (an import-linter contract keeps it so).

Wire format: HTTP/1.1 `POST /cni` with JSON `{"type", "env", "stdin", "netns"}`. The
reply's `X-CNI-Code` header is the plugin's exit code and the body its stdout; a reply
with `X-CNI-Fallback: <why>` instead means the daemon cannot serve this caller (another
network namespace): the executable then runs the plugin in-process, as it does when no
daemon listens. `X-CNI-Busy` marks a refusal for load: DEL and GC then run in-process
too, everything else reports the daemon's code 11.
"""

import _socket
import posix
import sys

try:
    from _json import encode_basestring_ascii as _quote
except ImportError:  # an interpreter without CPython's accelerator
    from json.encoder import encode_basestring_ascii as _quote

# `typing` itself costs a few milliseconds to import; type checkers read this as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import NoReturn

DEFAULT_SOCKET = "/run/multihome/multihome.sock"
SOCKET_ENV = "MULTIHOME_SOCKET"
SOCKET_KEY = "socketPath"
ENGINE_TYPE = "multihome"
# Multus' executable names, served by the engine too: thick (`multus-shim`) and thin
# (`multus`). Their config names the socket as Multus' shim reads it, not as ours.
MULTUS_TYPES = ("multus", "multus-shim")
ENGINE_TYPES = (ENGINE_TYPE, *MULTUS_TYPES)
MULTUS_SOCKET_DIR_KEY = "daemonSocketDir"
MULTUS_SOCKET_DIR = "/run/multus/"
MULTUS_SOCKET_NAME = "multus.sock"
CONNECT_TIMEOUT = 2.0
# Longer than the daemon's own bound on a request's waits (pool.DEFAULT_WAIT): the daemon
# answers first; this only ends the wait on a daemon that hangs.
REPLY_TIMEOUT = 240.0
CODE_HEADER = "X-CNI-Code"
FALLBACK_HEADER = "X-CNI-Fallback"
# On a reply the daemon sent without reading the request (too many connections): DEL and
# GC then run in-process, as when no daemon answers; they are never refused for load.
BUSY_HEADER = "X-CNI-Busy"


class Unreachable(Exception):
    """Nothing answers on the socket (not running, or gone before the request was sent)."""


class Lost(Exception):
    """The daemon took the request but died or closed the connection before replying."""


def environ() -> dict[str, str]:
    """The process environment as `os.environ` would decode it."""
    return {k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
            for k, v in posix.environ.items()}


class _DecoderSettings:
    """What `_json.make_scanner` reads from a `json.JSONDecoder`: the C parser without
    `json` itself, whose import (`re`, `enum`) costs more than the rest of the shim."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"),
                      "NaN": float("nan")}.__getitem__


def loads(data: bytes) -> object:
    """`json.loads` for one document; ValueError when it is not one."""
    text = data.decode("utf-8")
    try:
        from _json import make_scanner

        start = len(text) - len(text.lstrip())
        # typeshed asks for a JSONDecoder; the scanner reads only the attributes above
        value, end = make_scanner(_DecoderSettings())(text, start)  # type: ignore[arg-type]
        if not text[end:].strip():
            return value
    except Exception:  # malformed: json.loads below says exactly why
        pass
    import json

    return json.loads(text)


def _config_string(stdin: bytes, key: str) -> str:
    """The config's string `key`, or ''; parsed only when the key can be there."""
    if b'"' + key.encode() + b'"' not in stdin:
        return ""
    try:
        conf = loads(stdin)
    except Exception:  # RecursionError too: the plugin reports the bad config itself
        return ""
    value = conf.get(key) if isinstance(conf, dict) else None
    return value if isinstance(value, str) else ""


def multus_socket(socket_dir: str) -> str:
    """`<dir>/multus.sock`, as Multus joins them (default dir /run/multus/)."""
    return (socket_dir or MULTUS_SOCKET_DIR).rstrip("/") + "/" + MULTUS_SOCKET_NAME


def socket_path(stdin: bytes, env: "Mapping[str, str]", plugin_type: str = ENGINE_TYPE) -> str:
    """Multus' types: config key `daemonSocketDir`, else /run/multus/, as Multus' shim
    finds its daemon (it reads no environment). Others: config key `socketPath`, else
    $MULTIHOME_SOCKET, else the default."""
    if plugin_type in MULTUS_TYPES:
        return multus_socket(_config_string(stdin, MULTUS_SOCKET_DIR_KEY))
    return _config_string(stdin, SOCKET_KEY) or env.get(SOCKET_ENV) or DEFAULT_SOCKET


def netns_id() -> int:
    """Inode of our network namespace: the daemon serves only callers in its own."""
    try:
        return posix.stat("/proc/self/ns/net").st_ino
    except OSError:
        return 0


def request_body(plugin_type: str, env: "Mapping[str, str]", stdin: bytes) -> bytes:
    """The JSON request, written with the C string encoder that `json.dumps` uses."""
    pairs = ", ".join(f"{_quote(k)}: {_quote(v)}" for k, v in env.items()
                      if k.startswith("CNI_") or k == "PATH")
    text = (f'{{"type": {_quote(plugin_type)}, "env": {{{pairs}}}, '
            f'"stdin": {_quote(stdin.decode("utf-8", "surrogateescape"))}, '
            f'"netns": {netns_id()}}}')
    return text.encode("ascii")


def http_post(path: str, url: str, body: bytes,
              timeout: float | None = None) -> tuple[dict[str, str], bytes]:
    """POST `body` to `url` on the unix socket `path`; the reply's headers and body."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect(path)
        except OSError as e:
            raise Unreachable(f"{path}: {e.strerror or e}") from e
        sock.settimeout(timeout)
        head = (f"POST {url} HTTP/1.1\r\nHost: multihome\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        try:
            sock.sendall(head + body)
        except OSError as e:
            raise Unreachable(f"{path}: {e.strerror or e}") from e
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except OSError as e:
            raise Lost(f"connection to {path} failed: {e.strerror or e}") from e
    finally:
        sock.close()
    reply = b"".join(chunks)
    head_end = reply.find(b"\r\n\r\n")
    if not reply.startswith(b"HTTP/1.") or head_end < 0:
        raise Lost(f"the daemon on {path} closed the connection without a reply")
    headers: dict[str, str] = {}
    for line in reply[:head_end].decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers, reply[head_end + 4:]


def call_daemon(path: str, plugin_type: str, env: "Mapping[str, str]",
                stdin: bytes) -> tuple[int, str] | None:
    """(exit code, stdout) from the daemon; None when it asks us to run in-process."""
    headers, body = http_post(path, "/cni", request_body(plugin_type, env, stdin),
                              REPLY_TIMEOUT)
    if FALLBACK_HEADER.lower() in headers:
        return None
    if BUSY_HEADER.lower() in headers and env.get("CNI_COMMAND") in ("DEL", "GC"):
        raise Lost(f"the daemon on {path} is too busy to read the request")
    try:
        return int(headers[CODE_HEADER.lower()]), body.decode("utf-8", "surrogateescape")
    except (KeyError, ValueError) as e:
        raise Lost(f"the daemon on {path} sent an unreadable reply: {body[:200]!r}") from e


def _finish(code: int, output: str) -> "NoReturn":
    if output:
        sys.stdout.write(output)
    sys.stdout.flush()
    sys.stderr.flush()
    # Nothing is left to clean up; the interpreter's own teardown would cost ~2 ms.
    posix._exit(code)


def _no_fallback(plugin_type: str, why: str, details: str) -> "NoReturn":
    """A standalone executable (on a host without the package) reports instead."""
    msg = _quote(f"{why}; this {plugin_type} executable cannot run the plugin itself (it "
                 "was installed with `install-cni --standalone`, for a host without multihome)")
    _finish(1, f'{{"cniVersion": "1.1.0", "code": 11, "msg": {msg}, '
               f'"details": {_quote(details)}}}')


class Fallback:
    """The daemon did not serve the call: the executable runs the plugin itself.

    `daemon_down` (why, details) when the plugin needs a daemon that did not answer (the
    engine, or a daemon lost mid-request); None when running in-process is the answer.
    """

    def __init__(self, why: str, details: str, daemon_down: "tuple[str, str] | None") -> None:
        self.why, self.details, self.daemon_down = why, details, daemon_down


def forward(plugin_type: str) -> Fallback:
    """Forward this process's CNI call to the daemon and exit with its reply; return
    only when the daemon cannot serve it, with stdin rewound for the in-process run."""
    env = environ()
    command = env.get("CNI_COMMAND", "")
    try:
        stdin = b"" if command == "VERSION" else sys.stdin.buffer.read()
    except OSError:
        stdin = b""
    path = socket_path(stdin, env, plugin_type)
    why, details = "the multihome daemon serves only its own network namespace", ""
    down: tuple[str, str] | None = None
    try:
        reply = call_daemon(path, plugin_type, env, stdin)
    except Unreachable as e:
        why, details = f"multihome daemon is not running (no answer on {path})", str(e)
        # Only the engine needs its daemon; a plugin executable does the work itself.
        if plugin_type in ENGINE_TYPES:
            down = (f"{why}; start `multihome daemon` on this node", details)
        reply = None
    except Lost as e:
        # DEL and GC are idempotent: done here; ADD/CHECK/STATUS must not run twice at once.
        why, details = "multihome daemon stopped before answering", str(e)
        down = (why, details)
        reply = None
    if reply is not None:
        _finish(*reply)
    import io  # built in, already loaded by the interpreter: costs nothing

    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    return Fallback(why, details, down)


def main(plugin_type: str) -> "NoReturn":
    """Entry of a standalone executable (exits): it has only the daemon to turn to, and
    answers code 11 when the daemon does not serve the call."""
    fallback = forward(plugin_type)
    _no_fallback(plugin_type, fallback.why, fallback.details)
