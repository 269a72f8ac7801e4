"""The paper's regularizers for Hugging Face models: mixout, dropout settings and wdecay.

- :func:`mixout` / :class:`MixLinear`: the operator and the layer (``mixout.py``, ``mixlinear.py``).
- :func:`apply_mixout`, :func:`set_dropout`, :func:`head_module_names`: model surgery (``surgery.py``).
- :class:`WDecay`, :func:`pretrained_reference`, :func:`squared_distance`: wdecay(u, λ) and
  ‖w − w_pre‖² (``wdecay.py``).
"""

from mixsweep.regularizers.mixlinear import MixLinear
from mixsweep.regularizers.mixout import RegularizerError, mixout
from mixsweep.regularizers.surgery import (
    MixoutSummary,
    apply_mixout,
    head_dropout_names,
    head_module_names,
    select_layers,
    set_dropout,
)
from mixsweep.regularizers.wdecay import WDecay, pretrained_reference, squared_distance

__all__ = [
    "MixLinear",
    "MixoutSummary",
    "RegularizerError",
    "WDecay",
    "apply_mixout",
    "head_dropout_names",
    "head_module_names",
    "mixout",
    "pretrained_reference",
    "select_layers",
    "set_dropout",
    "squared_distance",
]
