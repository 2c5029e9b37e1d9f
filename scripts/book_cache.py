"""Keep the book's execution cache only while the code and results it ran on are unchanged.

Jupyter Book keys its cache on each notebook's code cells; a page that imports ``zsrl`` or reads
``results/`` would keep stale outputs after those change. This script hashes every file under the
given folders and empties the cache folder when the hash differs from the one stored in it.

    python scripts/book_cache.py _build/.jupyter_cache zsrl results
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

KEY_FILE = "zsrl_cache_key"


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


def refresh(cache: Path, folders: list[Path]) -> bool:
    """Empty ``cache`` if it was made with other contents of ``folders``; True if it was emptied."""
    key = tree_hash(folders)
    stored = cache / KEY_FILE
    stale = stored.exists() and stored.read_text().strip() != key
    if stale or not stored.exists():
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        stored.write_text(key + "\n")
    return stale


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    cache, folders = Path(argv[0]), [Path(a) for a in argv[1:]]
    if refresh(cache, folders):
        print(f"book cache {cache}: {', '.join(argv[1:])} changed, every page runs again")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
