"""HyPe (Yuan et al. 2023, "HyPe: Better Pre-trained Language Model Fine-tuning with Hidden Representation
Perturbation", ACL).

The reference code is the specification: Yuanhy1997/HyPe, ``hype_modeling_bert.py``,
``BertEncoder.forward`` (set up by ``BertEncoder.add_noise_sampler`` from ``main.py``). In training mode
only, before *every* Transformer layer (the input of layer 0, i.e. the embeddings' output, included; the
layer stack's output is not perturbed), the hidden states get fresh noise of their own shape::

    h_i ← h_i + z_i,   z_i = ε · U[0, 1)  (``uniform``: ``eps * FloatTensor(shape).uniform_()``, not centred)
                       z_i = ε · N(0, 1)  (``normal``:  ``eps * FloatTensor(shape).normal_()``)

Every position is perturbed, padding included, as in the reference. ``main.py`` for BERT passes
``layer_range = []`` unless ``--hype_top_layers``/``--hype_low_layers`` are given, which
``add_noise_sampler`` reads as "all layers"; the README's commands give neither, so all layers it is.
The intermediate variant (``--hype_intermediate``: noise after the attention block) is off in the
README and not reproduced. At eval (``model.eval()``) nothing is added, as the reference's
``self.training`` check. Noise is drawn layer by layer, bottom to top, per forward pass, from a
generator derived from ``noise_seed``; it is added through a forward pre-hook on each encoder layer,
so every forward pass in training (R3F's noisy one too) is perturbed, as the reference's encoder is.

Defaults: the README's command, ``--hype_type uniform --hype_eps 1e-5``. That command also sets
``--dropout_rate 0.0``, which in ``main.py`` sets ``hidden_dropout_prob`` only (attention-probability
dropout stays at the checkpoint's 0.1). This method sets no dropout (the ``dropout`` method owns it:
alone, every dropout is 0; in the lab's cells, Devlin's 0.1 everywhere). The README's command is RTE
with ``--low_resource`` (a 1k-example subset), the reference's few-sample setting.

Settings: ``eps`` > 0, ``noise`` ∈ {uniform, normal}. Record: the number of layers perturbed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from mixsweep.regularizers.anatomy import encoder_layers, generator
from mixsweep.regularizers.base import Method, RunContext, register

NOISES = ("uniform", "normal")


def hype_noise(like: Tensor, eps: float, noise: str, gen: torch.Generator) -> Tensor:
    """ε·U[0, 1) or ε·N(0, 1) of ``like``'s shape, drawn in float32 (the reference's FloatTensor)."""
    z = torch.empty(like.shape, device=like.device, dtype=torch.float32)
    if noise == "uniform":
        z.uniform_(generator=gen)
    else:
        z.normal_(generator=gen)
    return (eps * z).to(like.dtype)


@register
class HyPe(Method):
    name = "hype"
    order = 55

    def __init__(self, cfg):
        super().__init__(cfg)
        self.known_keys("eps", "noise")
        self.eps = self.number("eps", default=1e-5, lo=0.0, open_lo=True)
        self.noise = self.choice("noise", NOISES, default="uniform")
        self.layers: list[str] = []
        self._gen: torch.Generator | None = None

    def settings(self) -> dict[str, Any]:
        return {"eps": self.eps, "noise": self.noise}

    def label(self) -> str:
        return f"hype({self.eps:g}{'' if self.noise == 'uniform' else ',normal'})"

    def prepare(self, ctx: RunContext) -> None:
        self.layers = encoder_layers(ctx.model, self.name)
        for name in self.layers:
            ctx.model.get_submodule(name).register_forward_pre_hook(self._perturb(ctx), with_kwargs=True)

    def _perturb(self, ctx: RunContext):
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
            if not module.training:  # the reference's ``if self.training``: eval passes are clean
                return None
            if self._gen is None:
                device = (args[0] if args else kwargs["hidden_states"]).device
                self._gen = generator(ctx.noise_seed, self.name, device)
            if args:
                return (args[0] + hype_noise(args[0], self.eps, self.noise, self._gen), *args[1:]), kwargs
            h = kwargs["hidden_states"]
            return args, {**kwargs, "hidden_states": h + hype_noise(h, self.eps, self.noise, self._gen)}
        return hook

    def record(self) -> dict[str, Any]:
        return {"eps": self.eps, "noise": self.noise, "layers": len(self.layers)}
