"""Result records: what they say about where they were made (versions, device, threads, host), their
checksum, and reading them back with a check of their shape."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

import zsrl

PACKAGES = ("torch", "numpy", "mujoco", "dm-control", "scipy")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name where the system tells it."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_info(device: torch.device) -> dict[str, Any]:
    return {
        "zsrl": zsrl.__version__,
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "device": str(device),
        "device_name": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }


# What every result record holds; a JSON file without these is not one.
RECORD_KEYS = ("command", "method", "domain", "scale", "config", "tasks", "evaluations", "complete")


class RecordError(ValueError):
    """A file is not a readable, undamaged zsrl result record."""


def _canonical(record: dict[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "checksum"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def seal(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with a ``checksum``: the SHA-256 of its canonical JSON without that key."""
    return {**record, "checksum": hashlib.sha256(_canonical(record)).hexdigest()}


def read_record(path: Path) -> dict[str, Any]:
    """A result record from ``path``, checked: JSON, undamaged (where it carries a checksum; records
    made before checksums do not) and of the right shape. Anything else is a :class:`RecordError`."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RecordError(f"{path} is not a result record: not JSON ({error})") from None
    if not isinstance(record, dict):
        raise RecordError(f"{path} is not a result record: it holds a {type(record).__name__}")
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise RecordError(f"{path} is not a result record: it lacks {missing}")
    if "checksum" in record and seal(record)["checksum"] != record["checksum"]:
        raise RecordError(f"{path} does not match its checksum: the record was changed or damaged")
    if not isinstance(record["evaluations"], list) or not isinstance(record["config"], dict):
        raise RecordError(f"{path} is not a result record: 'evaluations' or 'config' is malformed")
    return record
