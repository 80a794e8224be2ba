"""The exported model directory as diffusers (and the Hub) read it: ``model_index.json`` and the
one-line ``pipeline.py`` it names, so that ``DiffusionPipeline.from_pretrained(dir,
trust_remote_code=True)`` builds a :class:`~pipelines.pipeline.SpatialDreamerPipeline`.

diffusers resolves a ``model_index.json`` in three steps, each of which this layout meets:

1. ``"_class_name": ["pipeline", "SpatialDreamerPipeline"]``: a class that is not part of diffusers
   comes from ``pipeline.py`` in the directory. That file only imports this package (so it needs
   ``pip install spatialdreamer``); diffusers runs a directory's code only with
   ``trust_remote_code=True``, as for every custom pipeline.
2. ``"model": ["pipelines.hub", "SpatialDreamerModel"]``: a component's library must already be
   imported (``pipeline.py`` imports this module) and must name the base class whose
   ``from_pretrained`` loads the component, under one of diffusers' importable names
   (``ModelMixin``, ``SchedulerMixin``, ...). SpatialDreamerModel is a plain ``nn.Module`` with its
   own ``from_pretrained``, so this module names ``nn.Module`` as its ``ModelMixin``.
3. A component without a subfolder of its own name is loaded from the directory itself: the
   model's files (``unet/``, ``refiner/``, ..., ``spatialdreamer.json``) stay where
   ``SpatialDreamerModel.from_pretrained(dir)`` has always read them.
"""

from __future__ import annotations

import json
from pathlib import Path

import diffusers
from torch.nn import Module as ModelMixin  # the loadable base diffusers looks up (see above)

from pipelines.model import SpatialDreamerModel

MODEL_INDEX_NAME = "model_index.json"
PIPELINE_FILE_NAME = "pipeline.py"

PIPELINE_FILE = '''"""Entry point of
`diffusers.DiffusionPipeline.from_pretrained(this_dir, trust_remote_code=True)`.

It only imports the installed spatialdreamer package (pip install spatialdreamer); the model
itself is loaded by SpatialDreamerModel.from_pretrained from this directory.
"""

import pipelines.hub  # noqa: F401  (the library model_index.json names for the "model" component)
from pipelines.pipeline import SpatialDreamerPipeline  # noqa: F401
'''


def model_index() -> dict:
    """The ``model_index.json`` of an exported directory (see the module docstring)."""
    return {
        "_class_name": [Path(PIPELINE_FILE_NAME).stem, "SpatialDreamerPipeline"],
        "_diffusers_version": diffusers.__version__,
        "model": [__name__, SpatialDreamerModel.__name__],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    }


def write_model_index(directory: str | Path) -> None:
    """Write ``model_index.json`` and ``pipeline.py`` into an exported model directory (which must
    hold the model's files and a ``scheduler/`` folder)."""
    directory = Path(directory)
    if not (directory / "scheduler").is_dir():
        raise FileNotFoundError(f"{directory}: no scheduler/ folder to name in {MODEL_INDEX_NAME}")
    (directory / MODEL_INDEX_NAME).write_text(json.dumps(model_index(), indent=2) + "\n")
    (directory / PIPELINE_FILE_NAME).write_text(PIPELINE_FILE)


__all__ = ["ModelMixin", "SpatialDreamerModel", "model_index", "write_model_index"]
