"""The console's Flask application: configuration, the guard, and the pages' blueprints.

Why Flask + Jinja2 rendered on the server: the store is a synchronous SQLite file shared
with the CLI, every page is a read of a few rows, and forms post back to the server that
already holds the CLI's validation code; no front-end build, no JavaScript needed (the
policy page "watches" progress by refreshing itself). Flask/Werkzeug/Jinja2 are mature,
maintained by Pallets, and packaged in Debian.

The pages live in console/pages/, one blueprint per family; they share the request's
store (opened by path, closed at the end of the request) through pages.common.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, render_template
from jinja2 import DictLoader

from multihome.console import guard, templates, topology
from multihome.console.pages import auth, nads, network, policies, workloads
from multihome.console.pages.common import (
    NODE_NETNS,
    STORE_PATH,
    TOKEN,
    TOPOLOGY_SOURCE,
    close_db,
    local_next,
)
from multihome.store import Store, store_path

# a form body or YAML document larger than this is refused with 413 (waitress enforces
# the same bound before the body reaches the app)
MAX_BODY = 1 << 20
BLUEPRINTS = (auth.bp, nads.bp, workloads.bp, network.bp, policies.bp)


def create_app(store: str | None, token: str | None = None,
               topology_source: Callable[[Store], topology.Topology] | None = None,
               node_netns: str | None = None, listen: guard.Listen | None = None) -> Flask:
    """``store`` is a store path (None: $MULTIHOME_STORE or the default); with ``token`` every
    request must carry it (Authorization: Bearer, or the session of a /login);
    ``node_netns`` (a netns path) plays the node, as `multihome node --netns` does;
    ``listen`` is the address served (the Host and Origin requests must name)."""
    app = Flask("multihome.console")
    app.jinja_loader = DictLoader(templates.ALL)
    # the templates have no .html suffix, so Flask would not escape them by default: names
    # and messages come from users and must never become markup
    app.jinja_env.autoescape = True
    app.jinja_env.globals["csrf_token"] = guard.csrf_token
    guard.configure(app)
    guard.bind(app, listen or guard.Listen())
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, MAX_FORM_MEMORY_SIZE=MAX_BODY)
    app.config[STORE_PATH] = store_path(store)
    app.config[TOKEN] = token
    app.config[NODE_NETNS] = node_netns
    app.config[TOPOLOGY_SOURCE] = topology_source or (
        lambda db: topology.current(db, node_netns))
    app.teardown_appcontext(close_db)

    # every request, of every blueprint, passes the guard first (Host, Origin, CSRF, token)
    @app.before_request
    def _gate() -> Response | None:
        return guard.check(app, lambda: render_template("login", title="Log in", refresh=None,
                                                        error="", next=local_next()))

    app.after_request(guard.secure_headers)
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    return app
