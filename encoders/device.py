"""Choosing the torch device an encoder runs on."""

from __future__ import annotations

import torch

from core.errors import InvalidArgumentError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn a device name into a `torch.device`, checking that it is usable.

    `"auto"` picks CUDA when a GPU is visible and the CPU otherwise. An explicit
    device that is not available raises instead of silently falling back, so a
    run that was meant for the GPU never crawls along on the CPU unnoticed.

    Args:
        device: `"auto"`, `"cpu"`, `"cuda"`, `"cuda:1"`, `"mps"`, or a `torch.device`.

    Returns:
        The resolved device.

    Raises:
        InvalidArgumentError: The name is not a device, or that device is not available.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if isinstance(device, torch.device):
        resolved = device
    elif not isinstance(device, str):
        raise InvalidArgumentError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {device!r}")
    elif device.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            resolved = torch.device(device.strip().lower())
        except RuntimeError as exc:
            raise InvalidArgumentError(
                f"unknown device {device!r}; valid: 'auto', 'cpu', 'cuda', 'cuda:<index>', 'mps'"
            ) from exc
    _check_available(resolved)
    return resolved


def _check_available(device: torch.device) -> None:
    """Raise when `device` cannot be used on this machine."""
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InvalidArgumentError(f"device {str(device)!r} requested but CUDA is not available; use 'cpu' or 'auto'")
        if device.index is not None and device.index >= count:
            raise InvalidArgumentError(f"device {str(device)!r} requested but only {count} CUDA device(s) exist")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise InvalidArgumentError("device 'mps' requested but MPS is not available; use 'cpu' or 'auto'")
    elif device.type != "cpu":
        raise InvalidArgumentError(f"unsupported device {str(device)!r}; valid: 'auto', 'cpu', 'cuda', 'cuda:<index>', 'mps'")
