"""HTTP access to the API server: credentials, JSON requests, watch streams.

Credentials come from lightkube's kubeconfig parser (a kubeconfig file, or the in-cluster
service account). The bearer token file is re-read whenever its mtime changes: kubelet
rotates projected service-account tokens, and a daemon holding an expired token leaves
pods stuck in ContainerCreating (the most reported Multus failure).
"""

from __future__ import annotations

import json
import os
import re
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx  # lightkube >= 1.0 ships httpx as "httpx2"

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class ApiUnreachable(Exception):
    """No answer from the API server (connection refused, timeout, TLS failure)."""


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status, self.body = status, body
        super().__init__(f"API server answered {status}: {body.get('message', body)}")


@dataclass
class Credentials:
    server: str
    token: str = ""
    token_file: str = ""
    ca_file: str = ""
    client_cert: tuple[str, str] | None = None
    insecure: bool = False


_PATH_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def check_api_path(path: str) -> None:
    """The last guard before a request: every segment a plain name, so no value that
    slipped past validation can climb out of its collection (`..`) or add a query."""
    segments = path.split("/")
    if segments[0] != "" or not all(_PATH_SEGMENT.match(s) and ".." not in s
                                     for s in segments[1:]):
        raise ValueError(f"refusing the API path {path[:200]!r}: it has a segment that is "
                         "not a plain name")


def credentials_from_kubeconfig(path: str | None = None) -> Credentials:
    """A kubeconfig file when given, else the in-cluster service account."""
    from lightkube.config.kubeconfig import KubeConfig
    from lightkube.core.exceptions import ConfigError

    try:
        if path:
            conf = KubeConfig.from_file(path).get()
        else:
            conf = KubeConfig.from_service_account(SERVICE_ACCOUNT_DIR).get()
    except ConfigError as e:
        raise ValueError(str(e)) from e
    if conf is None:
        raise ValueError(f"kubeconfig {path or SERVICE_ACCOUNT_DIR} has no current context")
    user = conf.user
    cert = (user.client_cert, user.client_key) if user and user.client_cert and user.client_key \
        else None
    return Credentials(
        server=conf.cluster.server.rstrip("/"),
        token=(user.token or "") if user else "",
        token_file=(user.token_file or "") if user else "",
        ca_file=conf.cluster.certificate_auth or "",
        client_cert=(str(cert[0]), str(cert[1])) if cert else None,
        insecure=bool(conf.cluster.insecure),
    )


class TokenSource:
    """The bearer token; a token file is re-read when it changes on disk."""

    def __init__(self, token: str = "", token_file: str = "") -> None:
        self._token, self._file = token, token_file
        self._mtime: float | None = None
        self._lock = threading.Lock()

    def current(self) -> str:
        if not self._file:
            return self._token
        with self._lock:
            try:
                mtime = os.stat(self._file).st_mtime_ns
            except OSError:
                return self._token  # keep the last good token while kubelet rewrites it
            if mtime != self._mtime:
                self._token = Path(self._file).read_text().strip()
                self._mtime = mtime
            return self._token


class ApiClient:
    """JSON requests against one API server."""

    def __init__(self, creds: Credentials, timeout_s: float = 10.0) -> None:
        self.creds = creds
        self.tokens = TokenSource(creds.token, creds.token_file)
        verify: ssl.SSLContext | bool = not creds.insecure
        if creds.ca_file and not creds.insecure:
            verify = ssl.create_default_context(cafile=creds.ca_file)
        self._http = httpx.Client(base_url=creds.server, verify=verify,
                                  cert=creds.client_cert, timeout=timeout_s)
        self._closed = False

    def _unreachable_if_closed(self, e: RuntimeError) -> ApiUnreachable:
        """httpx refuses a closed client with RuntimeError: a watcher still running
        while its owner shuts down gets the error every caller already handles."""
        if self._closed:
            return ApiUnreachable(f"{self.creds.server}: the client was closed")
        raise e

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self.tokens.current()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                body: Any = None, content_type: str = "application/json") -> dict[str, Any]:
        check_api_path(path)
        try:
            resp = self._http.request(
                method, path, params=params,
                content=None if body is None else json.dumps(body).encode(),
                headers=self._headers(content_type if body is not None else None))
        except httpx.TransportError as e:
            raise ApiUnreachable(f"{self.creds.server}: {e}") from e
        except RuntimeError as e:
            raise self._unreachable_if_closed(e) from e
        try:
            data = resp.json() if resp.content else {}
        except ValueError:
            data = {"message": resp.text}
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, data if isinstance(data, dict) else {})
        return data if isinstance(data, dict) else {}

    def watch(self, path: str, params: dict[str, str],
              timeout_s: float = 300.0) -> Iterator[dict[str, Any]]:
        """Events of one watch request, one dict per line, until the server ends it."""
        check_api_path(path)
        query = dict(params, watch="true", allowWatchBookmarks="true",
                     timeoutSeconds=str(int(timeout_s)))
        try:
            with self._http.stream("GET", path, params=query, headers=self._headers(),
                                   timeout=httpx.Timeout(10.0, read=timeout_s + 10)) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise ApiError(resp.status_code, resp.json() if resp.content else {})
                for line in resp.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.TransportError as e:
            raise ApiUnreachable(f"{self.creds.server}: {e}") from e
        except RuntimeError as e:
            raise self._unreachable_if_closed(e) from e

    def close(self) -> None:
        self._closed = True
        self._http.close()
