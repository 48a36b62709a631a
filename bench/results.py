"""bench/RESULTS.md: each benchmark script owns one `## ` section and rewrites only it."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def write_section(section: str, lines: list[str], path: Path = RESULTS) -> None:
    """Replace the section that starts with `section` (a `## ` heading) by `lines`, or
    append it; what comes before and after it (other scripts' sections, the hand-written
    notes) stays as it is."""
    kept = path.read_text() if path.exists() else "# Benchmark results\n\n"
    head, found, tail = kept.partition(section)
    rest = tail[tail.find("\n## "):] if found and "\n## " in tail else ""
    path.write_text(head.rstrip("\n") + "\n\n" + "\n".join(lines).rstrip("\n") + "\n"
                    + rest)
