"""LoRA as a stabilizer (Hu et al. 2022; Chen et al. 2022, "Revisiting Parameter-Efficient Tuning: Are We
Really There Yet?", EMNLP, arXiv 2202.07962: parameter-efficient tuning is less unstable across seeds,
the fewer parameters train).

The layers come from ``peft`` (``LoraConfig`` + ``inject_adapter_in_model``, in place: the model keeps its
class and module names, so the head, the record's representation capture and every other method see
the same model). Each target ``nn.Linear`` W (default: every attention ``query`` and ``value``, Chen et
al.'s and LoRA's choice for BERT/RoBERTa) becomes::

    h = W x + b + (α / r) · B A dropout(x),     A ∈ R^{r × d_in},  B ∈ R^{d_out × r}

A ~ kaiming-uniform (a = √5, i.e. U(−1/√d_in, 1/√d_in)), B = 0 (peft's ``init_lora_weights=True``, the
same as loralib's ``Linear.reset_parameters`` that Chen et al.'s code uses), so the model's output at
step 0 is the pretrained one. Scaling α/r (not rsLoRA's α/√r); dropout on LoRA's input 0 (loralib's
default; Chen et al. pass none). A's draws come from the run's ``init_seed`` (a stream derived from it for
"lora", the global RNG forked and restored around peft's init), so two runs with one seed start equal.

Trainable: A and B of every target, the new head (``classifier``) and, with ``pooler: true`` (the
default), the pooler. Chen et al.'s code (guanzhchen/PETuning ``model/sequence_classification.py``
``RobertaLoraForSequenceClassification``) freezes every ``roberta.*`` parameter whose name lacks "lora"
and trains RoBERTa's whole classification head, a dense + tanh layer and the output projection; in
``BertForSequenceClassification`` that dense + tanh layer is the pooler, so the lab trains it too
(``pooler: false`` is peft's ``TaskType.SEQ_CLS`` default: ``PeftModelForSequenceClassification`` adds
only ``["classifier", "score"]`` to ``modules_to_save``). Every
bias, LayerNorm and embedding of the body is frozen (``bias="none"``).

Defaults: r = 8, α = 8 (scaling 1): peft's defaults and Chen et al.'s RTE and CoLA commands
(``scripts/mulitruns_scripts/lora/run_{rte,cola}_roberta_both.sh``; MRPC and STS-B use α = 16). Those
commands also set lr 1e-3 (RTE, CoLA), 5e-4 (MRPC), 1e-4 (STS-B), batch 16/32, 50 epochs with early
stopping on the dev loss (patience 10), no warmup, weight decay 0 and hidden dropout 0.1: the recipe,
not this method (the lab's cell takes the RTE command's lr 1e-3 through ``optimizer.lr``).

Other methods see the wrapped model: ``ctx.reference`` (w_pre) holds A₀, B₀ = 0 and the pooler, so
``wdecay(w_pre)`` pulls BA toward 0 (toward the pretrained weights) and ‖w − w_pre‖² (``distance_sq``)
measures the adapters' and the pooler's movement; the record adds Σ‖(α/r)·BA‖², the merged weights'
distance from the pretrained ones. Nothing is saved: the run keeps no weights.

Settings: ``r`` ≥ 1 (integer), ``alpha`` > 0, ``dropout`` ∈ [0, 1), ``targets`` (module-name suffixes, as
peft's ``target_modules``), ``pooler`` (true/false). Record: the settings, the scaling, the adapted
modules, the trainable and total parameter counts, Σ‖(α/r)·BA‖² at the end.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mixsweep.regularizers.anatomy import derived_seed, optional_module
from mixsweep.regularizers.base import Method, RegularizerError, RunContext, register
from mixsweep.regularizers.trainable import parameter_counts, train_only, under

ADAPTER = "default"  # peft's adapter name: parameters are <module>.lora_A.default.weight, ...


def lora_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, layer) of every peft LoRA layer in ``model``."""
    from peft.tuners.lora import LoraLayer

    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]


@torch.no_grad()
def merged_delta_sq(layers: Sequence[tuple[str, nn.Module]]) -> float:
    """Σ over LoRA layers of ‖(α/r)·B A‖²_F in float64: how far the merged weights are from W."""
    total = 0.0
    for _, layer in layers:
        a = layer.lora_A[ADAPTER].weight.double()
        b = layer.lora_B[ADAPTER].weight.double()
        total += float((layer.scaling[ADAPTER] * (b @ a)).pow(2).sum())
    return total


@register
class LoRA(Method):
    name = "lora"
    # After re-init, mixout and NoisyTune (they act on W, which LoRA then freezes) and after the dropout
    # method (20), which would otherwise overwrite LoRA's own dropout; before wdecay's reference (30).
    order = 25
    sets_trainable = True

    def __init__(self, cfg):
        super().__init__(cfg)
        self.known_keys("r", "alpha", "dropout", "targets", "pooler")
        self.r = self.number("r", default=8, lo=1, integer=True)
        self.alpha = self.number("alpha", default=8, lo=0.0, open_lo=True)
        self.dropout = self.number("dropout", default=0.0, lo=0.0, hi=1.0)
        if self.dropout >= 1.0:
            raise self.error("dropout", self.cfg["dropout"], "a number in [0, 1)", 0.1)
        targets = self.cfg.get("targets", ["query", "value"])
        if (isinstance(targets, (str, bytes)) or not isinstance(targets, Sequence) or not targets
                or not all(isinstance(t, str) and t for t in targets)):
            raise self.error("targets", targets, "a non-empty list of module names", "[query,value]")
        self.targets = [str(t) for t in targets]
        self.pooler = self.cfg.get("pooler", True)
        if not isinstance(self.pooler, bool):
            raise self.error("pooler", self.pooler, "true or false", "true")
        if importlib.util.find_spec("peft") is None:  # a .venv set up before peft joined the dependencies
            raise RegularizerError("regularizer.lora needs the package peft: run `make setup` "
                                   "(or pip install -c constraints.txt peft)")
        self._layers: list[tuple[str, nn.Module]] = []
        self.counts: dict[str, Any] = {}

    @property
    def scaling(self) -> float:
        return self.alpha / self.r

    def settings(self) -> dict[str, Any]:
        return {"r": self.r, "alpha": self.alpha, "dropout": self.dropout, "targets": self.targets,
                "pooler": self.pooler}

    def label(self) -> str:
        return f"lora({self.r},{self.alpha:g})"

    def prepare(self, ctx: RunContext) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        config = LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                            target_modules=list(self.targets), bias="none", init_lora_weights=True)
        # peft draws A (and the throw-away default init of nn.Linear) from torch's global CPU RNG while the
        # layers are still on the CPU: seed it from init_seed and restore it, so no other stream shifts.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(derived_seed(ctx.init_seed, self.name))
            try:
                inject_adapter_in_model(config, ctx.model)
            except ValueError as e:
                if "not found" not in str(e) and "target_modules" not in str(e):
                    raise
                raise RegularizerError(
                    f"{self.key('targets')}={self.targets} names no linear layer of {type(ctx.model).__name__}: "
                    f"pass module names it has, e.g. {self.key('targets')}=[query,value] for BERT") from None
        self._layers = lora_layers(ctx.model)
        adapters = {n for n, p in ctx.model.named_parameters() if p.requires_grad}  # peft froze the rest
        pooler = optional_module(ctx.model, "pooler") if self.pooler else None
        also = [*ctx.head, *([pooler] if pooler else [])]
        train_only(ctx.model, lambda n: n in adapters or under(n, also))
        self.counts = parameter_counts(ctx.model)

    def record(self) -> dict[str, Any]:
        delta = merged_delta_sq(self._layers) if self._layers else 0.0
        return {**self.settings(), "scaling": self.scaling, "adapted": [n for n, _ in self._layers],
                **self.counts, "merged_delta_sq": delta if math.isfinite(delta) else None}
