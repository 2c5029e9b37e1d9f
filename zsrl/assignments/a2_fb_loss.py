"""Assignment 2: the FB measure loss (book eq. (eq-fb-measure-loss)).

The student writes ``fb_loss(F1, F2, B_next, target_M, discount)`` returning the scalar

    L_FB = ½ Σ_{j=1,2} mean_{i≠l} (M_j[i,l] − γ_i M̄[i,l])² − Σ_{j=1,2} mean_i M_j[i,i],
    M_j = F_j B_nextᵀ,

for F1, F2: N x d (the two forward heads at (s_i, a_i, z_i)), B_next: N x d (B at the next states),
target_M: N x N (the target measure M̄, no gradient) and discount: a float or an N x 1 column
(γ_i multiplies row i). The checker compares the value with ``zsrl.losses.fb_measure_loss(...).total``
on random tensors and the gradients with respect to F1, F2 and B_next with the reference's, and
recognises the usual mistakes (the diagonal inside the off-diagonal mean, the ½ missing, one head
only, the positive term with the wrong sign or on M − γM̄, the discount on columns instead of rows).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from zsrl.assignments import Report, call, compare, compare_gradients, diagnose, leaves, matches
from zsrl.losses import fb_measure_loss

NAME = "A2 FB loss"

# (N, d, kind of discount): N ≠ d so that F @ B_next (B not transposed) fails loudly; the discounts are
# a float, then one per transition (N x 1), as for episodes that end (γ_i = 0) or per-transition γ.
CASES = ((6, 3, "float"), (9, 4, "column"), (5, 8, "column"), (12, 5, "float"))
SEED = 7


def make_inputs(n: int, d: int, kind: str, generator: torch.Generator):
    """Random F1, F2, B_next (N x d), target_M (N x N) and a discount (float or N x 1 column)."""
    F1, F2, B_next = (torch.randn(n, d, generator=generator) for _ in range(3))  # N x d each
    target_M = torch.randn(n, n, generator=generator) * d**0.5  # N x N, the scale of F·B
    if kind == "float":
        discount: Tensor | float = 0.98
    else:
        discount = torch.rand(n, 1, generator=generator) * 0.5 + 0.5  # N x 1 in [0.5, 1)
        discount[0, 0] = 0.0  # a transition that ends its episode
    return F1, F2, B_next, target_M, discount


def _off_diagonal(matrix: Tensor) -> Tensor:
    n = matrix.shape[-1]
    return (matrix.sum() - matrix.diagonal().sum()) / (n * (n - 1))


def _loss(
    heads: tuple[Tensor, ...],
    B_next: Tensor,
    target_M: Tensor,
    discount: Tensor | float,
    half: float = 0.5,
    off_mean: Callable[[Tensor], Tensor] = _off_diagonal,
    sign: float = -1.0,
    diag_on_residual: bool = False,
    rows: bool = True,
) -> Tensor:
    """The FB loss with one ingredient changed: the typical mistakes of :func:`typical_mistakes`."""
    if isinstance(discount, Tensor) and not rows:
        discount = discount.T  # 1 x N: γ_l on columns, the mistake
    total = B_next.new_zeros(())
    for F in heads:
        M = F @ B_next.T  # N x N
        residual = M - discount * target_M  # N x N
        total = total + half * off_mean(residual**2)
        diagonal = residual.diagonal() if diag_on_residual else M.diagonal()  # N
        total = total + sign * diagonal.mean()
    return total


def typical_mistakes(F1, F2, B_next, target_M, discount) -> dict[str, Tensor]:
    """What the usual wrong answers give on these inputs, keyed by the hint that explains each."""
    args = ((F1, F2), B_next, target_M, discount)
    n = F1.shape[0]
    mistakes = {
        "the diagonal is inside your off-diagonal mean: the pairs i = l are the positives "
        "(s+ = s'_i, the state the transition actually reached) and belong to the second term only. "
        "Average the squared errors over the N(N − 1) pairs i ≠ l": _loss(
            *args, off_mean=lambda m: m.mean()
        ),
        "you left the diagonal out of the sum but divided by N²: there are N(N − 1) pairs i ≠ l": (
            _loss(*args, off_mean=lambda m: (m.sum() - m.diagonal().sum()) / n**2)
        ),
        "the ½ in front of the squared errors is missing (it absorbs the factor 2 of the positive "
        "term −2·E[F(s, a)ᵀB(s')])": _loss(*args, half=1.0),
        "your loss uses the first forward head only: the sums over j run over both heads F1 and F2, "
        "each fitted to the same target M̄": _loss((F1,), B_next, target_M, discount),
        "your loss uses the first forward head twice: the second term of the sum over j needs F2": (
            _loss((F1, F1), B_next, target_M, discount)
        ),
        "the positive (diagonal) term has the wrong sign: it is −Σ_j mean_i M_j[i, i], a reward for "
        "a large measure towards the state actually reached": _loss(*args, sign=1.0),
        "your positive term is −mean_i (M_j − γM̄)[i, i], on the residual (as Meta Motivo writes it "
        "for logging). It has the same gradient, but the value differs by Σ_j mean_i γ_i M̄[i, i]: "
        "take the diagonal of M_j = F_j B_nextᵀ itself": _loss(*args, diag_on_residual=True),
        "the discount is missing: the target of M_j[i, l] is γ_i M̄[i, l]": _loss(
            (F1, F2), B_next, target_M, 1.0
        ),
    }
    if isinstance(discount, Tensor):
        mistakes[
            "the discount multiplies columns: γ_i is transition i's discount and multiplies row i of "
            "M̄ (the N x 1 column broadcasts along rows as given; do not transpose it)"
        ] = _loss(*args, rows=False)
    return mistakes


def check(student_fn: Callable[..., Tensor]) -> Report:
    """Compare ``student_fn(F1, F2, B_next, target_M, discount)`` with the FB measure loss."""
    report = Report(NAME)
    generator = torch.Generator().manual_seed(SEED)
    for index, (n, d, kind) in enumerate(CASES):
        F1, F2, B_next, target_M, discount = make_inputs(n, d, kind, generator)
        what = "γ = 0.98" if kind == "float" else "one γ_i per transition (N x 1)"
        context = f" on input {index} (N = {n}, d = {d}, {what})"
        mine = leaves(F1, F2, B_next)
        got = call(report, student_fn, *mine, target_M.clone(), discount, label=context)
        if got is None:
            return report
        if not isinstance(got, Tensor):
            return report.fail(
                f"the loss{context} is a {type(got).__name__}, not a torch tensor: keep it a "
                "tensor (no .item(), no numpy) so that loss.backward() can train F and B"
            )
        if got.dim() != 0:
            return report.fail(
                f"the loss{context}: shape {tuple(got.shape)}, expected () (a scalar): the loss "
                "is one number, a mean over the batch, summed over the two heads"
            )
        reference = leaves(F1, F2, B_next)
        want = fb_measure_loss(*reference, target_M, discount).total
        if not matches(got, want):
            hint = diagnose(got, typical_mistakes(F1, F2, B_next, target_M, discount))
            if hint is not None:
                report.fail(f"the loss{context} is not the FB loss: {hint}")
            compare(report, "the loss", got, want, context=context)
            return report
        names = ("F1", "F2", "B_next")
        if not compare_gradients(
            report, "loss", got, want, list(zip(names, mine, reference, strict=True)), context,
            "was something detached or computed in numpy?",
        ):  # fmt: skip
            return report
    report.messages.append(
        f"value and gradients match fb_measure_loss on {len(CASES)} random batches "
        "(N from 5 to 12, a float γ and per-transition γ_i)"
    )
    return report
