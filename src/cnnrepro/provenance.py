"""What every artifact carries: package versions, device and how it computes (determinism,
float32 precision), git commit, the fingerprint of the code its job ran, config slice, seed."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from . import fingerprint

PACKAGES = ("torch", "torchvision", "numpy", "scikit-learn", "captum", "torchattacks",
            "snakemake", "pandas", "matplotlib")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{device.index or 0}: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def numerics() -> dict[str, Any]:
    """How the process computes, as torch reports it now (set by
    :func:`cnnrepro.runtime.set_numerics`): determinism, cuDNN autotuning and whether CUDA
    runs float32 convolutions and matmuls in full float32 ("ieee") or TF32."""
    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "fill_uninitialized_memory": torch.utils.deterministic.fill_uninitialized_memory,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_conv_fp32_precision": torch.backends.cudnn.conv.fp32_precision,
        "cuda_matmul_fp32_precision": torch.backends.cuda.matmul.fp32_precision,
    }


def git_commit(where: str | Path = ".") -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                             text=True, check=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=where, capture_output=True, text=True, timeout=10).stdout
        return out.stdout.strip() + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def stamp(config: dict[str, Any] | None = None, seed: int | None = None,
          device: torch.device | str | None = None, when: bool = True) -> dict[str, Any]:
    """The provenance block attached to an artifact; without ``when``, no creation time
    and host: for an artifact that must be equal byte for byte across runs of one config
    and seed (``metrics.json``; its ``cost.json`` says when and where)."""
    block: dict[str, Any] = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
        "git_commit": git_commit(),
        "host": platform.node(),
    }
    if fingerprint.current() is not None:  # within a workflow job: the rule's code param
        block["code"] = fingerprint.current()
    if not when:
        del block["created"], block["host"]
    if device is not None:
        block["device"] = device_name(device)
        block["numerics"] = numerics()
    if seed is not None:
        block["seed"] = seed
    if config is not None:
        block["config"] = config
    return block
