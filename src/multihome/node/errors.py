"""The node layer's errors: not CNI errors (no CNI call reaches node/); the CLI and the
console print them as they are."""

from __future__ import annotations

from multihome.errors import MultihomeError


class NodeError(MultihomeError):
    """Node network state could not be read, applied, verified or restored."""
