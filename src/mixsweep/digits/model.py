"""The paper's Section 4 MLP (App. C.1): 784-300-100-10 with ReLU → LayerNorm → dropout per hidden layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class DigitsMLP(nn.Module):
    """Linear layers ``fc[0..k]``; after each hidden one: ReLU, then LayerNorm, then dropout(p).

    Dropout sits on the hidden neurons only (not on input or output neurons), so the layers that
    dropout feeds are ``fc[1:]``: those are the layers mixout replaces it on (see :func:`fed_by_dropout`).
    Weights are initialised N(0, init_std²), biases 0; LayerNorm starts at the identity affine map.
    """

    def __init__(
        self,
        sizes: Sequence[int] = (784, 300, 100, 10),
        dropout: float = 0.1,
        init_std: float = 0.02,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.fc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=False))
        hidden = sizes[1:-1]
        self.norm = nn.ModuleList(nn.LayerNorm(h) for h in hidden)
        self.drop = nn.ModuleList(nn.Dropout(dropout) for _ in hidden)
        with torch.no_grad():
            for linear in self.fc:
                linear.weight.normal_(0.0, init_std, generator=generator)
                linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for linear, norm, drop in zip(self.fc, self.norm, self.drop, strict=False):
            x = drop(norm(torch.relu(linear(x))))
        return self.fc[-1](x)

    def set_dropout(self, p: float) -> None:
        for drop in self.drop:
            drop.p = p

    def linear_names(self) -> list[str]:
        return [f"fc.{i}" for i in range(len(self.fc))]


def fed_by_dropout(model: DigitsMLP) -> list[str]:
    """Names of the linear layers whose input is a dropped-out hidden layer (the paper's mixout layers)."""
    return model.linear_names()[1:]
