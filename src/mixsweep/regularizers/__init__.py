"""Regularization methods behind one interface (``base.py``), one module per method.

- :mod:`~mixsweep.regularizers.base`: :class:`Method`, :class:`RunContext`, :func:`build_methods`,
  :func:`label_of`, :class:`RegularizerError`; read its docstring for the hook order.
- Methods, one module each, auto-discovered (:func:`registry` lists them): Lee et al.'s ``dropout``
  (``dropout.py``), ``mixout`` (``mixout_method.py``), ``wdecay`` (``wdecay.py``); the stabilizer lab's
  ``reinit``, ``llrd``, ``recadam``, ``child_tuning``, ``noisytune``, ``r3f``, ``hype``, ``rdrop``, ``spd``,
  ``smart``, ``lora``, ``bitfit``, ``cwgnc``, ``dps`` (``dps.py`` with ``dps_mix.py``). A new method is one
  more module here plus a yaml in ``conf/regularizer/``.
- Building blocks: the operator :func:`mixout` (``mixout.py``) and :class:`MixLinear`
  (``mixlinear.py``); model surgery :func:`apply_mixout`, :func:`set_dropout`, :func:`head_module_names`
  (``surgery.py``); :class:`WDecay`, :func:`pretrained_reference`, :func:`squared_distance` (``wdecay.py``).
"""

from mixsweep.regularizers.base import (
    Method,
    RegularizerError,
    RunContext,
    build_methods,
    label_of,
    register,
    registry,
)
from mixsweep.regularizers.mixlinear import MixLinear
from mixsweep.regularizers.mixout import mixout
from mixsweep.regularizers.surgery import (
    MixoutSummary,
    apply_mixout,
    head_dropout_names,
    head_module_names,
    select_layers,
    set_dropout,
)
from mixsweep.regularizers.wdecay import WDecay, pretrained_reference, squared_distance, squared_distances

__all__ = [
    "Method",
    "MixLinear",
    "MixoutSummary",
    "RegularizerError",
    "RunContext",
    "WDecay",
    "apply_mixout",
    "build_methods",
    "head_dropout_names",
    "head_module_names",
    "label_of",
    "mixout",
    "pretrained_reference",
    "register",
    "registry",
    "select_layers",
    "set_dropout",
    "squared_distance",
    "squared_distances",
]
