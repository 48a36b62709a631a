"""The login form (with `--token-file`) and the front page."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, redirect, request

from multihome.console import guard
from multihome.console.pages.common import TOKEN, local_next, page

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    expected = current_app.config[TOKEN]
    if not expected:
        return redirect("/nads")
    error = ""
    if request.method == "POST":
        if guard.token_matches(request.form.get("token", "").strip(), expected):
            guard.log_in(expected)
            return redirect(local_next())
        error = "that is not this console's token"
    return page("login", "Log in", error=error, next=local_next()), 401 if error else 200


@bp.get("/")
def index() -> Any:
    return redirect("/nads")
