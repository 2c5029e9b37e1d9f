"""Atomic, checksummed file writes: a crash leaves either the old file or the new one, never half of
one, and a file damaged later is caught when it is read.

Every file zsrl reads back (datasets, checkpoints, best weights, records) has a sidecar
``NAME.sha256`` holding its SHA-256; :func:`verify_checksum` checks it before the file is parsed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_files(folder: Path) -> list[Path]:
    """The temporary files :func:`atomic_writer` leaves in ``folder`` when a process is killed
    mid-write (``.NAME.XXXX.tmp``)."""
    return sorted(Path(folder).glob(".*.tmp"))


@contextlib.contextmanager
def atomic_writer(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``.

    The file gets the permissions of an ordinary new file (0666 less the umask), not the private
    0600 of a temporary file, so a shared cache stays readable by the group.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path) as f:
        f.write(data)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


class ChecksumError(RuntimeError):
    """A file does not match its checksum, or its checksum file is unreadable."""


def checksum_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".sha256")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksum(path: Path) -> str:
    """Write ``path``'s SHA-256 to its sidecar (atomically); return it."""
    digest = sha256_file(path)
    atomic_write_bytes(checksum_path(path), f"{digest}  {Path(path).name}\n".encode())
    return digest


def stored_checksum(path: Path) -> str | None:
    """The SHA-256 in ``path``'s sidecar; None without one; a :class:`ChecksumError` if it is
    empty or malformed."""
    sidecar = checksum_path(path)
    if not sidecar.exists():
        return None
    words = sidecar.read_text(errors="replace").split()
    if not words or len(words[0]) != 64 or any(c not in "0123456789abcdef" for c in words[0]):
        raise ChecksumError(f"checksum file {sidecar} is empty or malformed; delete it or the run")
    return words[0]


def verify_checksum(path: Path, required: bool = False) -> None:
    """Check ``path`` against its sidecar checksum (a file without one passes unless ``required``);
    a mismatch is a :class:`ChecksumError` naming the file."""
    expected = stored_checksum(path)
    if expected is None:
        if required:
            raise ChecksumError(f"{path} has no checksum file {checksum_path(path).name}")
        return
    if sha256_file(path) != expected:
        raise ChecksumError(f"{path} does not match its checksum: the file is damaged")
