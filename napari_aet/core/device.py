"""Where torch work runs: CUDA when present, the CPU otherwise (the same code path)."""

from __future__ import annotations


def resolve_device(device="auto"):
    """``"auto"`` picks CUDA when available, else CPU; ``"cuda"`` fails clearly without it.

    Accepts a ``torch.device`` (returned as is) or a string (``"auto"``, ``"cpu"``,
    ``"cuda"``, ``"cuda:1"``).
    """
    import torch

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for but torch sees no CUDA GPU; use 'cpu'")
    return torch.device(device)


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU."""
    import torch

    return bool(torch.cuda.is_available())
