"""One set of name rules (DNS-1123) for every entry point: what passes is safe to use as
a path segment, a netns file name or part of an API path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multihome.store import names


@given(st.text(max_size=300))
def test_accepted_names_are_plain_path_segments(text: str) -> None:
    for problem, limit in ((names.label_problem(text, "x"), names.LABEL_MAX),
                           (names.subdomain_problem(text, "x"), names.SUBDOMAIN_MAX)):
        if problem is None:
            assert text and "/" not in text and ".." not in text and len(text) <= limit
            assert text not in (".", "..") and text == text.strip() and text.isascii()


@pytest.mark.parametrize("bad", ["x/y", "../../x", "..", ".", "A", "a_b", "-a", "a-", "",
                                 "a\nb", "a" * 64])
def test_namespaces_that_are_refused(bad: str) -> None:
    with pytest.raises(names.InvalidName, match="namespace"):
        names.check_namespace(bad)


@pytest.mark.parametrize("good", ["default", "multus-test", "a", "0", "a" * 63])
def test_namespaces_that_pass(good: str) -> None:
    assert names.check_namespace(good) == good


def test_object_names_may_have_dots_but_not_empty_labels() -> None:
    assert names.check_name("bridge.dev") == "bridge.dev"
    for bad in ("a..b", ".a", "a.", "a/b"):
        with pytest.raises(names.InvalidName):
            names.check_name(bad)


def test_non_strings_are_refused_by_type() -> None:
    assert names.label_problem(5, "namespace") == "namespace must be a string, got int"
