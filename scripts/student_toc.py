"""Write the student edition's table of contents: the book's ``_toc.yml`` without the solutions.

    python scripts/student_toc.py _toc.yml _build/student/_toc.yml

Every entry whose file lies under a ``solutions/`` folder is dropped with its sections, so the student
build (``make book-student``) neither renders nor executes the reference solutions.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml


def is_solution(entry: dict[str, Any]) -> bool:
    return "solutions/" in str(entry.get("file", "")) + "/"


def strip_solutions(node: Any) -> Any:
    """The toc node with every solution entry (and what it contains) removed."""
    if isinstance(node, list):
        return [strip_solutions(e) for e in node if not (isinstance(e, dict) and is_solution(e))]
    if isinstance(node, dict):
        return {k: strip_solutions(v) for k, v in node.items()}
    return node


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python scripts/student_toc.py TOC OUT", file=sys.stderr)
        return 2
    toc = yaml.safe_load(Path(argv[0]).read_text())
    out = Path(argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(strip_solutions(toc), sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
