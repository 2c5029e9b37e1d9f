"""Networks: MLPs; FB's forward net F, backward net B and actor π; the baselines' twin critics and
squashed-Gaussian actor (reference: ref-fb-architecture, ref-baselines)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zsrl.losses import normalize_to_sphere


def mlp(
    inp: int,
    hidden: int,
    layers: int,
    out: int,
    *,
    out_activation: bool = False,
    layernorm_input: bool = False,
    layernorm_hidden: bool = False,
) -> nn.Sequential:
    """``layers`` hidden layers of width ``hidden``: Linear→ReLU (or Linear→LayerNorm→Tanh first),
    then Linear(hidden, out). A preprocessor adds a ReLU on the output. ``layernorm_hidden`` puts a
    LayerNorm before every hidden ReLU (Linear→LayerNorm→ReLU)."""
    norm = lambda: [nn.LayerNorm(hidden)] if layernorm_hidden else []  # noqa: E731
    first: list[nn.Module] = [nn.Linear(inp, hidden)]
    first += [nn.LayerNorm(hidden), nn.Tanh()] if layernorm_input else [*norm(), nn.ReLU()]
    body: list[nn.Module] = []
    for _ in range(layers - 1):
        body += [nn.Linear(hidden, hidden), *norm(), nn.ReLU()]
    tail: list[nn.Module] = [nn.Linear(hidden, out)] + ([nn.ReLU()] if out_activation else [])
    return nn.Sequential(*first, *body, *tail)


def orthogonal_init_(module: nn.Module) -> nn.Module:
    """Orthogonal weights (gain 1) and zero biases in every ``nn.Linear`` of ``module``, in place.

    The initialisation of controllable_agent and Meta Motivo; PyTorch's default is uniform in
    ±1/√fan_in with non-zero biases.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


class ForwardNet(nn.Module):
    """F(s, a, z) → (F_1, F_2): obs-action and obs-z preprocessors, then two separate heads.

    The two branches are exposed so that a caller scoring many actions at one (s, z) — the
    conservative penalties — computes the obs-z branch once and reuses it.
    """

    def __init__(self, obs_dim: int, action_dim: int, z_dim: int, cfg) -> None:
        super().__init__()
        pre = dict(
            hidden=cfg.preprocessor_hidden,
            layers=cfg.preprocessor_layers,
            out=cfg.preprocessor_out,
            out_activation=True,
            layernorm_input=cfg.layernorm_input,
        )
        self.obs_action = mlp(obs_dim + action_dim, **pre)
        self.obs_z = mlp(obs_dim + z_dim, **pre)
        head = dict(
            hidden=cfg.forward_hidden,
            layers=cfg.forward_layers,
            out=z_dim,
            layernorm_hidden=cfg.forward_layernorm,
        )
        self.head1 = mlp(2 * cfg.preprocessor_out, **head)
        self.head2 = mlp(2 * cfg.preprocessor_out, **head)

    def embed_obs_action(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.obs_action(torch.cat([obs, action], -1))  # ... x P

    def embed_obs_z(self, obs: Tensor, z: Tensor) -> Tensor:
        return self.obs_z(torch.cat([obs, z], -1))  # ... x P

    def heads(self, h_sa: Tensor, h_sz: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.cat([h_sa, h_sz], -1)  # ... x 2P
        return self.head1(h), self.head2(h)  # ... x d each

    def forward(self, obs: Tensor, action: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.heads(self.embed_obs_action(obs, action), self.embed_obs_z(obs, z))

    def heads_shared(self, h_sa: Tensor, h_sz: Tensor, counts: list[int]) -> tuple[Tensor, Tensor]:
        """The heads for many actions per (state, z): exactly ``heads`` on every pair, cheaper.

        h_sa: K x N x P, the obs-action embeddings of K action samples; h_sz: G x N x P, G obs-z
        embeddings, the g-th shared by the next ``counts[g]`` samples (sum(counts) = K). Each head's
        first layer is linear in the concatenation [h_sa, h_sz], so its h_sz half is computed once
        per group rather than once per sample.
        """
        P = h_sz.shape[-1]
        outputs = []
        for head in (self.head1, self.head2):
            first = head[0]
            shared = nn.functional.linear(h_sz, first.weight[:, P:], first.bias)  # G x N x H
            N, H = shared.shape[1:]
            per_sample = torch.cat(
                [shared[g].expand(count, N, H) for g, count in enumerate(counts)]
            )  # K x N x H
            x = nn.functional.linear(h_sa, first.weight[:, :P]) + per_sample  # K x N x H
            outputs.append(head[1:](x))  # K x N x d
        return outputs[0], outputs[1]


class BackwardNet(nn.Module):
    """B(s), always L2-normalised and scaled to norm √d."""

    def __init__(self, obs_dim: int, z_dim: int, cfg) -> None:
        super().__init__()
        self.net = mlp(obs_dim, cfg.backward_hidden, cfg.backward_layers, z_dim)

    def forward(self, obs: Tensor) -> Tensor:
        return normalize_to_sphere(self.net(obs))  # ... x d


class Actor(nn.Module):
    """π(s, z): preprocessors on s and on [s, z], a trunk, and a tanh mean (reference:
    ref-fb-architecture)."""

    def __init__(self, obs_dim: int, action_dim: int, z_dim: int, cfg) -> None:
        super().__init__()
        pre = dict(
            hidden=cfg.preprocessor_hidden,
            layers=cfg.preprocessor_layers,
            out=cfg.preprocessor_out,
            out_activation=True,
            layernorm_input=cfg.layernorm_input,
        )
        self.obs = mlp(obs_dim, **pre)
        self.obs_z = mlp(obs_dim + z_dim, **pre)
        w = cfg.actor_hidden
        self.trunk = nn.Sequential(
            nn.Linear(2 * cfg.preprocessor_out, w),
            nn.LayerNorm(w),
            nn.Tanh(),
            nn.Linear(w, w),
            nn.ReLU(),
            nn.Linear(w, action_dim),
        )

    def forward(self, obs: Tensor, z: Tensor) -> Tensor:
        """The mean action μ = tanh(trunk(...)) in [−1, 1]^A."""
        h = torch.cat([self.obs(obs), self.obs_z(torch.cat([obs, z], -1))], -1)  # ... x 2P
        return torch.tanh(self.trunk(h))  # ... x A


def truncated_normal_sample(mean: Tensor, std: float, clip: float) -> Tensor:
    """μ + clip(ε, ±clip), ε ~ N(0, σ²), kept inside (−1, 1) with a straight-through gradient.

    The gradient reaches μ even where the clamp is active, as in the paper's "TruncatedNormal".
    """
    noise = (torch.randn_like(mean) * std).clamp(-clip, clip)
    action = mean + noise
    clamped = action.clamp(-1.0 + 1e-6, 1.0 - 1e-6)
    return action - action.detach() + clamped.detach()


class TwinMLP(nn.Module):
    """Two independent scalar MLPs on one input: the double critics Q_1, Q_2(s, a) of CQL and TD3 and
    the double values V_1, V_2(s, g) of GC-IQL (reference: ref-gciql, ref-cql, ref-td3)."""

    def __init__(self, inp: int, hidden: int, layers: int, layernorm_input: bool) -> None:
        super().__init__()
        net = dict(hidden=hidden, layers=layers, out=1, layernorm_input=layernorm_input)
        self.net1, self.net2 = mlp(inp, **net), mlp(inp, **net)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.net1(x).squeeze(-1), self.net2(x).squeeze(-1)  # ... each


class TanhGaussianActor(nn.Module):
    """A Gaussian policy squashed by tanh into (−1, 1)^A (CQL's and GC-IQL's actors; reference:
    ref-gciql, ref-cql).

    The MLP outputs the mean and log σ of the pre-tanh Gaussian. log σ is kept in [log_std_min,
    log_std_max] either by a hard clamp (CQL) or smoothly, min + (max − min)·(tanh(x) + 1)/2 (GC-IQL).
    """

    def __init__(
        self,
        inp: int,
        action_dim: int,
        hidden: int,
        layers: int,
        log_std_min: float = -5.0,
        log_std_max: float = 2.0,
        smooth_log_std: bool = False,
    ) -> None:
        super().__init__()
        self.net = mlp(inp, hidden, layers, 2 * action_dim)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        self.smooth_log_std = smooth_log_std

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The pre-tanh mean and log σ: ... x A each."""
        mean, raw = self.net(x).chunk(2, -1)
        if self.smooth_log_std:
            span = self.log_std_max - self.log_std_min
            return mean, self.log_std_min + 0.5 * span * (torch.tanh(raw) + 1)
        return mean, raw.clamp(self.log_std_min, self.log_std_max)

    def mean_action(self, x: Tensor) -> Tensor:
        """tanh of the Gaussian's mean: the deterministic action used at evaluation, ... x A."""
        return torch.tanh(self(x)[0])

    def sample(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """A reparameterised sample a = tanh(u), u ~ N(μ, σ²), and log π(a) summed over dimensions."""
        mean, log_std = self(x)
        u = mean + log_std.exp() * torch.randn_like(mean)  # ... x A
        return torch.tanh(u), tanh_gaussian_log_prob(u, mean, log_std).sum(-1)

    def log_prob(self, x: Tensor, action: Tensor) -> Tensor:
        """log π(a | x) per action dimension (... x A) of given actions, e.g. the dataset's.

        Actions at ±1 exactly would have an infinite log-probability; they are moved 1e-6 inside.
        """
        mean, log_std = self(x)
        u = torch.atanh(action.clamp(-1 + 1e-6, 1 - 1e-6))  # ... x A
        return tanh_gaussian_log_prob(u, mean, log_std)


def tanh_gaussian_log_prob(u: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log density of a = tanh(u), u ~ N(mean, exp(log_std)²), per dimension (change of variables).

    log π(a) = log N(u; mean, σ²) − log(1 − tanh²u), with log(1 − tanh²u) = 2(log 2 − u − softplus(−2u)):
    exact and finite for every u, where log(1 − a² + ε) would cap the correction (and zero its gradient)
    as soon as tanh saturates.
    """
    normal = -0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    return normal - 2 * (math.log(2) - u - nn.functional.softplus(-2 * u))
