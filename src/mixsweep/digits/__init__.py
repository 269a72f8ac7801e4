"""The paper's Section 4 experiment: pretrain an MLP on one digit set, finetune on MNIST with mixout or dropout.

Public entry point: :func:`run_digits` (one finetuning restart; w_pre is built once and cached).
"""

from mixsweep.digits.run import run_digits

__all__ = ["run_digits"]
