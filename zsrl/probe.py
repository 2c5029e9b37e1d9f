"""The value probe: how much F values the actions the dataset holds against those it does not.

FB's failure on small or narrow data (the paper's Figure 2; reference: ref-size-ablations,
ref-conservative) shows as predicted values
Q(s, a, z) = min_j F_j(s, a, z)ᵀz that are higher for actions outside the data than for the dataset's own.
The probe scores one fixed set of dataset states and task vectors three ways: with the dataset
action, with a uniform random action, and with the policy's action. It draws from its own generator,
so logging it during training leaves the training randomness (and exact resume) untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from zsrl.losses import normalize_to_sphere
from zsrl.model import FBModel


@dataclass
class ValueProbe:
    """A fixed probe set: n dataset states with their actions, uniform actions and task vectors."""

    obs: Tensor  # n x O raw observations from the dataset
    action: Tensor  # n x A their dataset actions
    uniform: Tensor  # n x A uniform random actions in [−1, 1]
    z: Tensor  # n x d task vectors uniform on the √d sphere

    @classmethod
    def from_arrays(
        cls,
        observation: np.ndarray,
        action: np.ndarray,
        z_dim: int,
        n: int = 1024,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> ValueProbe:
        """Draw the probe set from dataset arrays (observation: N x O, action: N x A)."""
        rng = np.random.default_rng(seed)
        index = rng.choice(len(observation), size=min(n, len(observation)), replace=False)
        as_tensor = lambda x: torch.as_tensor(x, dtype=torch.float32, device=device)  # noqa: E731
        generator = torch.Generator().manual_seed(seed)
        z = normalize_to_sphere(torch.randn(len(index), z_dim, generator=generator))  # n x d
        uniform = torch.rand(len(index), action.shape[1], generator=generator) * 2 - 1  # n x A
        return cls(
            as_tensor(observation[index]),
            as_tensor(action[index]),
            uniform.to(device),
            z.to(device),
        )

    @torch.no_grad()
    def __call__(self, model: FBModel) -> dict[str, Tensor]:
        """Mean predicted Q on dataset, uniform and policy actions (device scalars, no host sync)."""
        return {
            "q_data": model.q_value(self.obs, self.action, self.z).mean(),
            "q_uniform": model.q_value(self.obs, self.uniform, self.z).mean(),
            "q_policy": model.q_value(self.obs, model.act(self.obs, self.z), self.z).mean(),
        }
