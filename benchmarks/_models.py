"""Random-weight SpatialDreamer models for the speed benchmarks, written once into a folder.

``FOLDER/svd`` and ``FOLDER/sd`` are the components (an SVD pipeline layout and an SD2.1
layout, what ``trainer fit`` stage 1 starts from), ``FOLDER/model`` the exported model with TIL
(what stage 2 starts from and what ``spatialdreamer convert`` loads). ``size``: ``paper`` (the
published architectures, ``pipelines.model.paper_size``, drawn on the GPU when there is one) or
``tiny`` (the test-size model). The paper size is built in a fresh process, so the GPU memory
used to draw the weights is released; each is marked complete only once written, so an
interrupted build is redone rather than reused.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from benchmarks._fresh import run_script

BUILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from benchmarks._models import build
    build(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
    """
)


def build(folder: Path, size: str, what: str) -> None:
    """Write ``what`` (``components`` or ``model``) of ``size`` into ``folder``."""
    import torch

    from pipelines.model import ModelConfig, SpatialDreamerModel, save_tiny_sd, save_tiny_svd

    if what == "components":
        if size == "paper":
            from pipelines.model.paper_size import save_paper_sd, save_paper_svd

            device = "cuda" if torch.cuda.is_available() else "cpu"
            save_paper_svd(folder / "svd", device=device)
            save_paper_sd(folder / "sd", seed=1, device=device)
        else:
            save_tiny_svd(folder / "svd")
            save_tiny_sd(folder / "sd", seed=1)
    else:
        config = ModelConfig(svd=str(folder / "svd"), refiner=str(folder / "sd"), til=True)
        SpatialDreamerModel.from_components(config).save_pretrained(folder / "model")


def random_components(folder: Path, size: str) -> tuple[Path, Path]:
    """(SVD pipeline folder, SD2.1 folder) with random weights of ``size``, built if missing."""
    _build_once(folder, size, "components")
    return folder / "svd", folder / "sd"


def exported_model(folder: Path, size: str) -> Path:
    """An exported SpatialDreamer model folder (TIL included) of ``size``, built if missing."""
    random_components(folder, size)
    _build_once(folder, size, "model")
    return folder / "model"


def _build_once(folder: Path, size: str, what: str) -> None:
    if size not in ("paper", "tiny"):
        raise ValueError(f"model size must be 'paper' or 'tiny', got {size!r}")
    done = folder / f"{what}.{size}.done"
    if done.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    if size == "paper":  # gigabytes of GPU memory, released when the process exits
        run_script(BUILD, [str(folder), size, what], {}, f"building the {size} {what}")
    else:
        build(folder, size, what)
    done.touch()
