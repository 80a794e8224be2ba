"""Load the pretrained components (SVD, SD2.1) from a hub id or a local directory, one code path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


class ComponentLoadError(OSError):
    """A pretrained component could not be found or read; the message names it and where from."""


def _offline_hint() -> str:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return " HF_HUB_OFFLINE is set: only local directories and the local hub cache are used."
    return ""


def load_component(
    cls: Any,
    source: str,
    subfolder: str | None,
    role: str,
    torch_dtype: torch.dtype | None = None,
    dtype_keyword: str = "torch_dtype",
) -> Any:
    """`cls.from_pretrained(source, subfolder=...)`; a missing model -> ComponentLoadError.

    source: hub id or local directory (the same call either way, as for the real checkpoints).
    role: what the component is for, used in the error message (e.g. "SVD denoising U-Net").
    dtype_keyword: the loader's dtype argument name (diffusers: torch_dtype, transformers: dtype).
    """
    kwargs: dict[str, Any] = {}
    if subfolder:
        kwargs["subfolder"] = subfolder
    if torch_dtype is not None:
        kwargs[dtype_keyword] = torch_dtype
    try:
        return cls.from_pretrained(source, **kwargs)
    except OSError as error:
        where = f"'{source}'" + (f" (subfolder '{subfolder}')" if subfolder else "")
        raise ComponentLoadError(
            f"cannot load the {role} ({cls.__name__}) from {where}: {error}.{_offline_hint()}"
        ) from error


def load_optional_component(
    cls: Any, source: str, subfolder: str, torch_dtype: torch.dtype | None = None, **kwargs: Any
) -> Any | None:
    """Like load_component for parts a model can live without (feature extractor, scheduler)."""
    local = Path(source)
    if local.is_dir() and not (local / subfolder).is_dir():
        return None
    try:
        return cls.from_pretrained(source, subfolder=subfolder, **kwargs)
    except OSError:
        return None


def refiner_subfolder(source: str) -> str | None:
    """Where the RefinerNet's UNet2DConditionModel lives in `source`: "unet" or the root.

    A local directory may be an SD2.1 pipeline layout (unet/config.json) or a bare U-Net
    (config.json); a hub id is taken as a pipeline layout.
    """
    local = Path(source)
    if local.is_dir():
        if (local / "unet" / "config.json").is_file():
            return "unet"
        if (local / "config.json").is_file():
            return None
        raise ComponentLoadError(
            f"cannot load the RefinerNet from '{source}': neither {local / 'unet' / 'config.json'} "
            f"(SD2.1 pipeline layout) nor {local / 'config.json'} (bare UNet2DConditionModel) "
            "exists"
        )
    return "unet"
