"""Checkers for the book's course assignments.

Each assignment module (``a1_successor_measure``, ``a2_fb_loss``, ``a3_vc_penalty``) has a
``check(student_function)`` that calls the student's function on random inputs, compares it with the
reference implementation in ``zsrl`` and returns a :class:`Report` that says what is wrong: an
exception, a wrong shape, or the first input on which the values differ and by how much. A stub that
still raises ``NotImplementedError`` gets a report that says so rather than an error, so an assignment
page can execute before it is solved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Report:
    """The outcome of a check: ``passed`` and the messages that explain it (printed as the repr)."""

    assignment: str
    passed: bool = True
    messages: list[str] = field(default_factory=list)

    def fail(self, message: str) -> Report:
        self.passed = False
        self.messages.append(message)
        return self

    def __repr__(self) -> str:
        head = f"{self.assignment}: " + ("all checks passed" if self.passed else "not yet")
        return "\n".join([head, *(f"  - {m}" for m in self.messages)])

    def __bool__(self) -> bool:
        return self.passed


def call(report: Report, function: Callable[..., Any], *args: Any, label: str = "") -> Any | None:
    """``function(*args)``, or None with the failure written into ``report``."""
    try:
        return function(*args)
    except NotImplementedError:
        report.fail(f"{function.__name__} is not implemented yet (it raises NotImplementedError)")
    except Exception as error:  # noqa: BLE001 - a student's function may raise anything
        report.fail(f"{function.__name__}{label} raised {type(error).__name__}: {error}")
    return None


def compare(
    report: Report,
    name: str,
    got: Any,
    expected: Any,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    context: str = "",
) -> bool:
    """Whether ``got`` matches ``expected`` in shape and values; explains the first mismatch."""
    got_array = np.asarray(got.detach().cpu() if hasattr(got, "detach") else got, dtype=np.float64)
    want = np.asarray(
        expected.detach().cpu() if hasattr(expected, "detach") else expected, dtype=np.float64
    )
    if got_array.shape != want.shape:
        report.fail(f"{name}{context}: shape {got_array.shape}, expected {want.shape}")
        return False
    if not np.all(np.isfinite(got_array)):
        report.fail(f"{name}{context}: contains NaN or infinite values")
        return False
    close = np.isclose(got_array, want, rtol=rtol, atol=atol)
    if not close.all():
        index = tuple(int(i) for i in np.argwhere(~close)[0])
        where = f" at index {index}" if index else ""
        report.fail(
            f"{name}{context}: {int((~close).sum())} of {close.size} values differ; "
            f"first{where}: got {got_array[index]:.6g}, expected {want[index]:.6g}"
        )
        return False
    return True
