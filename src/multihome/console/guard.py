"""Who may talk to the console, and which requests may change anything.

The console runs as root next to the user's browser, and its forms create NADs and apply
node policies, so three rules hold for every request:

* **Host**: the Host header must name the address the console listens on (for a loopback
  listener: localhost, 127.0.0.1 or ::1 on its port). A DNS-rebinding page reaches us
  with its own name in Host and gets 400.
* **Origin**: a state-changing request (anything but GET/HEAD/OPTIONS) that says where
  it comes from (Origin, else Referer) must come from the console itself (403 otherwise);
  a request that says nothing is a non-browser client.
* **CSRF token**: every state-changing request carries the per-session token (the forms'
  hidden `csrf_token` field or the X-CSRF-Token header) matching the one in the signed,
  HttpOnly, SameSite=Strict session cookie (403 otherwise). A cross-site page can neither
  read the token nor set the cookie.

With a token (`--token-file`) a request is let in by `Authorization: Bearer TOKEN` or by
the session of a login through the /login form; the token is never taken from the URL
(URLs end up in logs, the browser history and Referer headers).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from flask import Flask, Response, request, session

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})
CONFIG_KEY = "MULTIHOME_LISTEN"

# what the browser may do with our pages: no framing (clickjacking a form is a cross-site
# change too), no scripts at all, styles only from the page itself
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Listen:
    """The address served. ``port`` None: any port (an app not bound yet, the test client);
    ``names``: more host names a wildcard listener is reached by."""

    host: str = "127.0.0.1"
    port: int | None = None
    names: frozenset[str] = field(default_factory=frozenset)

    def host_names(self) -> frozenset[str] | None:
        """The names allowed in Host; None: any IP literal (a wildcard listener)."""
        if is_loopback(self.host):
            return LOOPBACK_NAMES | self.names
        if self.host in WILDCARDS:
            return None
        return frozenset({self.host.lower()}) | self.names

    def allows(self, hostport: str) -> bool:
        name, port = split_hostport(hostport)
        if name is None or (self.port is not None and port != self.port):
            return False
        names = self.host_names()
        if names is None:
            # a wildcard listener: only addresses, localhost and the names it was given,
            # never a name some other site's DNS points at us
            return name in LOOPBACK_NAMES or name in self.names or _is_ip(name)
        return name in names


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def split_hostport(text: str) -> tuple[str | None, int | None]:
    """("name", port) of a Host header value ("[::1]:8080", "localhost"); (None, None) when
    it is not one."""
    text = text.strip()
    if not text or any(c in text for c in "/@ \t?#\\"):
        return None, None
    try:
        parts = urlsplit(f"//{text}")
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        return None, None
    name = (parts.hostname or "").rstrip(".")
    return (name, port if port is not None else 80) if name else (None, None)


def _origin_ok(listen: Listen) -> bool:
    """A browser's Origin (else Referer) of a state-changing request names this console."""
    origin = request.headers.get("Origin")
    if origin is None:
        origin = request.headers.get("Referer")
        if origin is None:
            return True  # not a browser: the CSRF token still has to match
    parts = urlsplit(origin)
    if parts.scheme != "http" or not parts.netloc:
        return False  # includes "null" (sandboxed frames, file: pages)
    return listen.allows(parts.netloc) and parts.netloc.lower() == request.host.lower()


def csrf_token() -> str:
    """This session's token (made on first use; the forms embed it)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def _csrf_ok() -> bool:
    expected = session.get("csrf")
    given = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    return isinstance(expected, str) and hmac.compare_digest(given.encode(), expected.encode())


def _bearer_ok(token: str) -> bool | None:
    """True/False for a request with a Bearer header; None when it has none."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                               token.encode())


def logged_in(token: str) -> bool:
    return session.get("auth") == _fingerprint(token)


def log_in(token: str) -> None:
    session.clear()  # a new session: nothing chosen before the login survives it
    session["auth"] = _fingerprint(token)
    csrf_token()


def _fingerprint(token: str) -> str:
    # the session cookie is signed, not encrypted: keep the token itself out of it
    return hmac.new(b"multihome-console-login", token.encode(), "sha256").hexdigest()


def token_matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def listen_of(app: Flask) -> Listen:
    listen = app.config.get(CONFIG_KEY)
    return listen if isinstance(listen, Listen) else Listen()


def bind(app: Flask, listen: Listen) -> None:
    """Tell the app the address it serves (once the port is known)."""
    app.config[CONFIG_KEY] = listen
    # cookies are per host, not per port: two consoles must not overwrite each other's
    app.config["SESSION_COOKIE_NAME"] = ("multihome-session" if listen.port is None
                                         else f"multihome-session-{listen.port}")


def check(app: Flask, login_page: Callable[[], str]) -> Response | None:
    """The before-request gate; a response refuses the request, None lets it through."""
    listen = listen_of(app)
    if not listen.allows(request.host):
        return Response(f"400 Bad Request: this console is not served as {request.host!r}\n",
                        400, mimetype="text/plain")
    if "token" in request.args:
        return Response("400 Bad Request: the token never goes in the URL; send it in an "
                        "Authorization: Bearer header or through the login form\n", 400,
                        mimetype="text/plain")
    unsafe = request.method not in SAFE_METHODS
    if unsafe and not _origin_ok(listen):
        return Response("403 Forbidden: cross-site request refused\n", 403,
                        mimetype="text/plain")
    token: str | None = app.config.get("TOKEN")
    if token and request.path != "/login":
        bearer = _bearer_ok(token)
        if bearer is False or (bearer is None and not logged_in(token)):
            return Response(login_page(), 401, {"WWW-Authenticate": "Bearer"},
                            mimetype="text/html")
    if unsafe and not _csrf_ok():
        return Response("403 Forbidden: the form's CSRF token is missing or stale; reload "
                        "the page and submit again\n", 403, mimetype="text/plain")
    return None


def secure_headers(resp: Response) -> Response:
    for key, value in SECURITY_HEADERS.items():
        resp.headers.setdefault(key, value)
    return resp


def configure(app: Flask) -> None:
    """Session cookie settings and a fresh secret for this process."""
    # a random key per process: a restarted console invalidates old sessions and forms
    app.secret_key = secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_NAME="multihome-session")
