"""``scripts/gpu-check``: one prepared script that checks what a GPU session must know (issue 17).

Sections, each in its own module, each recorded even when it fails:

1. ``environment`` (:mod:`.env`): torch/CUDA versions, the device, bf16 support.
2. ``correctness`` (:mod:`.correctness`): the mixout operator and ``MixLinear`` on the device vs
   the CPU for the same mask, in fp32 and bf16; the target stays on the device and out of the
   optimizer; a short deterministic finetuning run done twice.
3. ``cost`` (:mod:`.cost`): steps/s and memory per regularizer, interleaved in one process.
4. ``throughput`` (:mod:`.throughput`): k concurrent small runs on one device as runs/hour, and
   from it and the cost section an estimate of Table 1's wall time (:mod:`.estimate`).

Regularized models are built only through :func:`mixsweep.gpucheck.prepare.prepare_model`.
``python -m mixsweep.gpucheck --help`` lists the options.
"""
