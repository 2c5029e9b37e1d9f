"""Checkers for the book's course assignments.

Each assignment module (``a1_successor_measure`` to ``a7_judging_results``) has a checker for each
part the student writes (``check(student_function)``, and ``check_<part>`` where there are several)
that calls the student's function on seeded inputs, compares it with the reference implementation in
``zsrl`` and returns a :class:`Report` that says what is wrong: an exception, a wrong shape, or the
first input on which the values differ and by how much, naming the typical mistake that gives those
values when it recognises one. A stub that still raises ``NotImplementedError`` gets a report that
says so rather than an error, so an assignment page can execute before it is solved.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Report:
    """The outcome of a check: ``passed`` and the messages that explain it (printed as the repr).

    ``result`` keeps what a checked function returned when a page goes on with it (an experiment's
    numbers, say), so that the page need not run it a second time; None otherwise.
    """

    assignment: str
    passed: bool = True
    messages: list[str] = field(default_factory=list)
    result: Any = field(default=None, repr=False)

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
    """``function(*args)``, or None with the failure written into ``report``.

    A function that returns None (a forgotten ``return``) is reported too.
    """
    name = getattr(function, "__name__", repr(function))
    try:
        result = function(*args)
    except NotImplementedError as error:
        if _raised_by(function, error):
            report.fail(f"{name} is not implemented yet (it raises NotImplementedError)")
        else:  # raised by something the student's code called: a real error, with its message
            report.fail(f"{name}{label} raised NotImplementedError from inside: {error!r}")
        return None
    except Exception as error:  # noqa: BLE001 - a student's function may raise anything
        report.fail(f"{name}{label} raised {type(error).__name__}: {error}")
        return None
    if result is None:
        report.fail(f"{name}{label} returned None: is a `return` missing?")
    return result


def _raised_by(function: Callable[..., Any], error: BaseException) -> bool:
    """Whether ``error`` was raised in ``function``'s own body (a stub), not in something it called."""
    code = getattr(inspect.unwrap(function), "__code__", None)  # through functools.wraps
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return code is None or (tb is not None and tb.tb_frame.f_code is code)


def as_array(value: Any) -> np.ndarray | None:
    """``value`` (array, tensor, number or nested lists) as a float64 array, or None if it is not one."""
    try:
        if hasattr(value, "detach"):
            value = value.detach().cpu()
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def matches(got: Any, expected: Any, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """Whether ``got`` equals ``expected`` in shape and values (a silent :func:`compare`)."""
    got_array, want = as_array(got), as_array(expected)
    return (
        got_array is not None
        and want is not None
        and got_array.shape == want.shape
        and bool(np.all(np.isfinite(got_array)))
        and bool(np.allclose(got_array, want, rtol=rtol, atol=atol))
    )


def diagnose(
    got: Any, mistakes: dict[str, Any], rtol: float = 1e-4, atol: float = 1e-5
) -> str | None:
    """The hint of the first typical mistake whose result ``got`` reproduces, else None.

    ``mistakes`` maps a hint (what the mistake is and how to fix it) to the value that mistake gives
    on the same input.
    """
    for hint, value in mistakes.items():
        if matches(got, value, rtol, atol):
            return hint
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
    got_array, want = as_array(got), as_array(expected)
    if got_array is None:
        report.fail(f"{name}{context}: got a {type(got).__name__}, expected an array of numbers")
        return False
    assert want is not None, "the reference must be numeric"
    if got_array.shape != want.shape:
        report.fail(f"{name}{context}: shape {got_array.shape}, expected {want.shape}")
        return False
    if not np.all(np.isfinite(got_array)):
        report.fail(f"{name}{context}: contains NaN or infinite values")
        return False
    close = np.isclose(got_array, want, rtol=rtol, atol=atol)
    if not close.all() and want.ndim == 0:
        report.fail(f"{name}{context}: got {float(got_array):.6g}, expected {float(want):.6g}")
        return False
    if not close.all():
        index = tuple(int(i) for i in np.argwhere(~close)[0])
        where = f" at index {index}" if index else ""
        report.fail(
            f"{name}{context}: {int((~close).sum())} of {close.size} values differ; "
            f"first{where}: got {got_array[index]:.6g}, expected {want[index]:.6g}"
        )
        return False
    return True


def leaves(*tensors: Any) -> list[Any]:
    """Fresh copies of ``tensors`` that collect gradients: one set for the student, one for the reference."""
    return [t.detach().clone().requires_grad_() for t in tensors]


def compare_gradients(
    report: Report,
    what: str,
    got: Any,
    want: Any,
    named_leaves: list[tuple[str, Any, Any]],
    context: str = "",
    detached_hint: str = "was something detached?",
) -> bool:
    """Whether ``got`` back-propagates into each student leaf as ``want`` does into the reference's.

    ``named_leaves`` holds (name, student leaf, reference leaf); the first mismatch is reported.
    """
    if not got.requires_grad:
        report.fail(f"the {what}{context} has the right value but no gradient: {detached_hint}")
        return False
    got.backward()
    want.backward()
    for name, leaf, ref in named_leaves:
        if leaf.grad is None:
            report.fail(f"no gradient reaches {name}{context}: was it detached?")
            return False
        if not compare(report, f"the gradient w.r.t. {name}", leaf.grad, ref.grad, context=context):
            return False
    return True
