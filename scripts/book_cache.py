"""Keep the book's executed pages only while the code and results they ran on are unchanged.

Jupyter Book keys its execution cache on each notebook's code cells, and Sphinx re-reads only the
pages whose source changed: a page that imports ``zsrl`` or reads ``results/`` would keep outputs
of code that is no longer there. This script hashes every file under the given folders and, when the
hash differs from the one stored in the build folder, removes the execution cache, the executed
notebooks, Sphinx's saved environment and the HTML, so that every page executes again.

    python scripts/book_cache.py _build zsrl results
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

KEY_FILE = "zsrl_cache_key"
# what Jupyter Book 1 keeps between builds in its build folder
STALE = (".jupyter_cache", "jupyter_execute", ".doctrees", "html")


def tree_hash(folders: list[Path]) -> str:
    """SHA-256 over the relative paths and bytes of every file under ``folders``, in sorted order."""
    digest = hashlib.sha256()
    for folder in folders:
        if not folder.exists():
            raise FileNotFoundError(f"cannot key the book cache on {folder}: no such folder")
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if "__pycache__" in path.parts:
                continue
            digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def refresh(build: Path, folders: list[Path]) -> bool:
    """Clear ``build``'s executed pages unless they were made with these contents of ``folders``.

    Returns True when something was cleared (a new build folder has nothing to clear).
    """
    key = tree_hash(folders)
    stored = build / KEY_FILE
    if stored.exists() and stored.read_text().strip() == key:
        return False
    stale = [build / name for name in STALE if (build / name).exists()]
    for path in stale:
        shutil.rmtree(path)
    build.mkdir(parents=True, exist_ok=True)
    stored.write_text(key + "\n")
    return bool(stale)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    build, folders = Path(argv[0]), [Path(a) for a in argv[1:]]
    if refresh(build, folders):
        print(f"book build {build}: {', '.join(argv[1:])} changed, every page executes again")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
