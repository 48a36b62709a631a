"""The optional parts of multihome and the PyPI extras that bring their libraries.

A CNI node needs neither the web console nor the Kubernetes client, so Flask, waitress,
cairosvg (`multihome[console]`) and lightkube (`multihome[k8s]`) are extras. When code
that needs one meets a missing library, `missing_extra` turns the ModuleNotFoundError into
the one line a person can act on. Standard library only: it is imported by the CLI's
entry point and the store, which must work on a node without any extra.
"""

from __future__ import annotations

# top-level module -> the extra that installs it (Flask brings Werkzeug and Jinja2;
# lightkube brings httpx)
EXTRA_OF = {
    "flask": "console", "werkzeug": "console", "jinja2": "console", "waitress": "console",
    "cairosvg": "console", "lightkube": "k8s", "httpx": "k8s", "cryptography": "cluster",
}
NEEDED_BY = {"console": "the web console and `topology -o png`",
             "k8s": "the Kubernetes mode (a k8s store, the node controllers)",
             "cluster": "the lab's Kubernetes cluster (`lab up --kubernetes`)"}


def missing_extra(error: BaseException, what: str) -> str | None:
    """The one-line message for `error` if it is a library of an extra that is not
    installed (`what` names what needed it), else None."""
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return None
    top = error.name.partition(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    return (f"{what} needs the '{extra}' extra ({top} is not installed): "
            f"pip install 'multihome[{extra}]'")
