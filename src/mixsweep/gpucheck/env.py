"""Section 1: what the check runs on."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

from mixsweep.run.environment import git_state, versions


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on ``device`` when ``bf16``, else a no-op context (reusable)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast can run on ``device``: ``is_bf16_supported()`` on CUDA; the CPU always can
    (in software; the runner itself uses bf16 only on CUDA)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return True


def environment(device: torch.device) -> dict[str, Any]:
    vers = versions()
    out: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "transformers": vers.get("transformers"),
        "python": vers.get("python"),
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpu_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "bf16_supported": bf16_supported(device),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "git": git_state(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out["gpu_name"] = props.name
        out["gpu_memory_gib"] = props.total_memory / 2**30
        out["gpu_capability"] = f"{props.major}.{props.minor}"
        out["gpu_multiprocessors"] = props.multi_processor_count
    else:
        out["gpu_name"] = None
        out["gpu_memory_gib"] = None
    return out
