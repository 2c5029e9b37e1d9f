"""The FB maths against small tensors computed by hand."""

import math

import pytest
import torch

from zsrl import losses


def test_off_diagonal_mean():
    m = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    assert losses.off_diagonal_mean(m).item() == pytest.approx((2 + 3 + 4 + 6 + 7 + 8) / 6)


def test_target_measure_takes_the_min_or_the_mean_of_the_heads():
    F1 = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    F2 = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    B = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    # M1 = [[1, 1], [3, -3]]; M2 = [[2, 2], [1, -1]]
    assert losses.target_measure(F1, F2, B).tolist() == [[1, 1], [1, -3]]
    assert losses.target_measure(F1, F2, B, "mean").tolist() == [[1.5, 1.5], [2, -2]]
    with pytest.raises(ValueError, match="unknown target heads 'max'.*'min', 'mean'"):
        losses.target_measure(F1, F2, B, "max")


def test_advantage_weighted_actor_loss_by_hand():
    mean = torch.zeros(3, 2, requires_grad=True)
    data = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    advantage = torch.tensor([1.0, -1.0, 0.0])  # std 1: scaled advantages are A / β
    w = 3 * torch.softmax(advantage / 0.5, 0)  # β = 0.5
    expected = (w * torch.tensor([1.0, 4.0, 2.0])).mean()
    loss = losses.advantage_weighted_actor_loss(mean, data, advantage, 0.5, 100.0)
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    # the gradient pulls each mean towards its data action, the better actions harder
    assert torch.allclose(mean.grad, -2 * w[:, None] * data / 3)
    clipped = losses.advantage_weighted_actor_loss(mean, data, advantage, 0.5, 1.0)
    assert clipped.item() == pytest.approx(
        (torch.tensor([1.0, 4.0 * w[1].item(), 2.0 * w[2].item()]).mean()).item()
    )
    # the scale of Q does not matter: A and 1000·A give the same loss
    big = losses.advantage_weighted_actor_loss(mean, data, 1000 * advantage, 0.5, 100.0)
    assert big.item() == pytest.approx(loss.item())


def test_fb_measure_loss_by_hand():
    # N = 2, d = 2. M_j = F_j B_nextᵀ.
    F1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    F2 = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    B = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # M1 = [[1, 1], [0, 2]]; M2 = [[1, 2], [1, 1]]
    target = torch.tensor([[0.0, 10.0], [20.0, 0.0]])
    gamma = 0.5
    # off-diagonal entries: M1[0,1]=1, M1[1,0]=0, M2[0,1]=2, M2[1,0]=1; γM̄ = 5 and 10
    off = 0.5 * (((1 - 5) ** 2 + (0 - 10) ** 2) / 2 + ((2 - 5) ** 2 + (1 - 10) ** 2) / 2)
    diag = -((1 + 2) / 2 + (1 + 1) / 2)
    out = losses.fb_measure_loss(F1, F2, B, target, gamma)
    assert out.off_diag.item() == pytest.approx(off)
    assert out.diag.item() == pytest.approx(diag)
    assert out.total.item() == pytest.approx(off + diag)


def test_fb_measure_loss_per_row_discount():
    F = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    B = torch.eye(2)
    target = torch.ones(2, 2)
    discount = torch.tensor([[0.0], [1.0]])  # row 0 terminal, row 1 γ = 1
    # M = I; off-diagonal residuals: row 0: 0 − 0 = 0, row 1: 0 − 1 = −1
    out = losses.fb_measure_loss(F, F, B, target, discount)
    assert out.off_diag.item() == pytest.approx(0.5 * 2 * (0 + 1) / 2)


def test_fb_measure_loss_gradient_reaches_F_and_B_only():
    F1 = torch.randn(4, 3, requires_grad=True)
    F2 = torch.randn(4, 3, requires_grad=True)
    B = torch.randn(4, 3, requires_grad=True)
    target = torch.randn(4, 4, requires_grad=True)
    losses.fb_measure_loss(F1, F2, B, target.detach(), 0.9).total.backward()
    assert F1.grad is not None and B.grad is not None and target.grad is None


def test_target_measure_is_elementwise_min():
    F1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    F2 = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    B = torch.tensor([[2.0, 1.0], [0.0, 3.0]])
    # M1 = [[2, 0], [1, 3]], M2 = [[1, 3], [2, 0]]
    expected = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert torch.equal(losses.target_measure(F1, F2, B), expected)


def test_orthonormality_loss_by_hand():
    B = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # C = [[1, 1], [1, 2]]: off-diagonal squares mean 1, diagonal mean 1.5
    assert losses.orthonormality_loss(B).item() == pytest.approx(1.0 - 2 * 1.5)
    assert losses.orthonormality_loss(B, 0.5).item() == pytest.approx(0.5 * (1.0 - 3.0))


def test_orthonormality_minimised_by_orthogonal_rows():
    orthogonal = torch.eye(3) * math.sqrt(3)  # norm √d, mutually orthogonal
    skew = losses.normalize_to_sphere(torch.tensor([[1.0, 0.1, 0], [1.0, 0.0, 0.1], [0.0, 1.0, 0]]))
    assert losses.orthonormality_loss(orthogonal) < losses.orthonormality_loss(skew)


def test_actor_loss_uses_min_head():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    F1 = torch.tensor([[3.0, 0.0], [0.0, 1.0]])  # Q1 = 3, 1
    F2 = torch.tensor([[2.0, 9.0], [9.0, 4.0]])  # Q2 = 2, 4
    assert losses.actor_loss(F1, F2, z).item() == pytest.approx(-(2 + 1) / 2)


def test_sphere_samples_have_norm_sqrt_d():
    torch.manual_seed(0)
    z = losses.sample_sphere(1000, 50)
    assert z.shape == (1000, 50)
    assert torch.allclose(z.norm(dim=-1), torch.full((1000,), math.sqrt(50)), atol=1e-4)
    # uniform on the sphere: the mean direction is near zero
    assert z.mean(0).norm() < 0.5


def test_mix_z_ratio_and_rows():
    torch.manual_seed(0)
    prior, backward = torch.zeros(10_000, 4), torch.ones(10_000, 4)
    mixed, mask = losses.mix_z(prior, backward, 0.5)
    from_backward = mixed[:, 0] == 1
    assert torch.equal(mask, from_backward)
    assert torch.all(mixed[from_backward] == 1) and torch.all(mixed[~from_backward] == 0)
    assert from_backward.float().mean().item() == pytest.approx(0.5, abs=0.02)
    assert torch.all(losses.mix_z(prior, backward, 0.0)[0] == 0)
    assert torch.all(losses.mix_z(prior, backward, 1.0)[0] == 1)


def test_infer_z_from_rewards_by_hand():
    B = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    r = torch.tensor([1.0, 0.0, 1.0])
    # mean r·B = [2, 1]/3 → direction [2, 1]/√5, scaled to √2
    expected = torch.tensor([2.0, 1.0]) / math.sqrt(5) * math.sqrt(2)
    assert torch.allclose(losses.infer_z_from_rewards(B, r), expected, atol=1e-6)
