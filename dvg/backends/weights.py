"""Locating model weights (local path or Hugging Face hub id) and the one missing-weights error.

Resolution of a backend's ``model`` string, in order:

1. an existing path (``~`` expanded; relative paths against the current directory);
2. a relative path that exists under ``$DVG_WEIGHTS_DIR`` (a shared weights folder);
3. anything that looks like a path (absolute, ``./``, ``~``, a file suffix such as ``.pth``)
   but exists nowhere -> :class:`MissingWeightsError`;
4. otherwise a hub id, loaded by transformers / diffusers from the Hugging Face cache.

``HF_HUB_OFFLINE`` / ``HF_HOME`` / ``HF_HUB_CACHE`` are read when a model is loaded, not when
``huggingface_hub`` was imported, so a process can switch to offline mode after start-up.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

MODEL_FLAGS = {"depth": "--depth-model", "inpaint": "--inpaint-model", "flow": "--flow-model"}
WEIGHTS_FREE = {
    "depth": "--depth sidecar (precomputed depth files next to each video)",
    "inpaint": "--inpaint telea (OpenCV, no weights)",
    "flow": "--flow dis (OpenCV, no weights)",
}
OFFLINE_PRESET = "--preset offline (sidecar depth, telea inpainting, dis flow: no weights at all)"
_PATH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors", ".onnx")


class MissingWeightsError(RuntimeError):
    """A backend's weights cannot be found or loaded.

    The message names the model id or path, how to provide the weights, and the weights-free
    alternatives. Attributes: ``kind`` ("depth" / "inpaint" / "flow"), ``backend``, ``model``.
    """

    def __init__(
        self,
        kind: str,
        backend: str,
        model: str,
        problem: str,
        download: str | None = None,
        hub_id: str | None = None,
    ) -> None:
        self.kind, self.backend, self.model = kind, backend, model
        flag = MODEL_FLAGS.get(kind, "--<kind>-model")
        if download is None and (looks_like_path(model) or find_local(model) is not None):
            hub_id = hub_id or "<hub id>"
            download = (
                f"fetch it on a machine with internet: `huggingface-cli download {hub_id} "
                f"--local-dir {model}` (or `hf download ...`), then copy that folder here"
            )
        elif download is None:
            download = (
                f"pre-download on a machine with internet: `huggingface-cli download {model}` "
                f"(or `hf download {model}`), copy that machine's HF_HOME folder here, then run "
                "with HF_HOME=<that folder> HF_HUB_OFFLINE=1"
            )
        lines = [
            f"{kind} backend {backend!r} has no weights: {model!r} {problem}.",
            "Provide the weights in one of these ways:",
            f"  - a local copy: {flag} PATH (a folder saved with save_pretrained / a hub "
            "snapshot, or a checkpoint file); relative paths are also looked up in "
            "$DVG_WEIGHTS_DIR;",
            f"  - {download}.",
            f"Weights-free alternatives: {WEIGHTS_FREE.get(kind, '')}; or {OFFLINE_PRESET}.",
        ]
        super().__init__("\n".join(lines))


# Whether the hub answered the preflight's request in this process (None: not asked yet).
HUB_STATE: dict[str, bool | None] = {"reachable": None}


def offline_by_environment() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value now."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """True when the environment says offline or the preflight found the hub unreachable (so
    loaders do not retry the network once per model)."""
    return offline_by_environment() or HUB_STATE["reachable"] is False


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache folder as the environment defines it now (same rules as
    ``huggingface_hub.constants``)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = os.environ.get("HF_HOME")
    if not home:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        home = os.path.join(xdg, "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def looks_like_path(model: str) -> bool:
    """True for strings that can only be a filesystem path, never a hub id ("org/name")."""
    return (
        os.path.isabs(model)
        or model.startswith((".", "~"))
        or "\\" in model
        or model.count("/") > 1
        or model.lower().endswith(_PATH_SUFFIXES)
    )


def find_local(model: str) -> Path | None:
    """The existing local file or folder ``model`` names (directly or under
    ``$DVG_WEIGHTS_DIR``), else ``None``."""
    path = Path(model).expanduser()
    if path.exists():
        return path
    weights_dir = os.environ.get("DVG_WEIGHTS_DIR")
    if weights_dir and not path.is_absolute():
        candidate = Path(weights_dir).expanduser() / path
        if candidate.exists():
            return candidate
    return None


def _hub_load_errors() -> tuple[type[BaseException], ...]:
    # UnpicklingError: a .bin refused by torch.load(weights_only=True), e.g. one with code in it
    errors: list[type[BaseException]] = [OSError, pickle.UnpicklingError]
    try:
        from huggingface_hub.errors import HFValidationError  # invalid repo id strings
    except ImportError:  # huggingface_hub < 0.23
        from huggingface_hub.utils import HFValidationError
    errors.append(HFValidationError)
    try:  # a truncated or corrupt weights file
        from safetensors import SafetensorError

        errors.append(SafetensorError)
    except ImportError:
        pass
    return tuple(errors)


def load_pretrained(
    kind: str,
    backend: str,
    model: str,
    load: Callable[..., T],
    marker: str | None = None,
    hub_id: str | None = None,
) -> T:
    """Call ``load(source, **hub_kwargs)`` for a local path or a hub id; wrap failures.

    Args:
        kind, backend: for the error message ("depth", "dpt").
        model: hub id or local path.
        load: e.g. ``lambda source, **kw: DPTForDepthEstimation.from_pretrained(source, **kw)``;
            for hub ids it receives ``local_files_only`` and ``cache_dir`` taken from the
            environment now.
        marker: file a local folder must contain (``config.json``, ``model_index.json``).
        hub_id: the backend's default hub id, suggested for download when ``model`` is a path.

    Raises:
        MissingWeightsError: the path does not exist, or the loader cannot find the files.
    """
    local = find_local(model)
    if local is None and looks_like_path(model):
        raise MissingWeightsError(kind, backend, model, "does not exist", hub_id=hub_id)
    if local is not None:
        if marker and local.is_dir() and not (local / marker).is_file():
            raise MissingWeightsError(
                kind,
                backend,
                model,
                f"is a folder without {marker} (not a saved model)",
                hub_id=hub_id,
            )
        source, kwargs = str(local), {}
    else:
        source, kwargs = model, {"local_files_only": hub_offline(), "cache_dir": hub_cache_dir()}
    try:
        return load(source, **kwargs)
    except _hub_load_errors() as err:
        if local is not None:
            problem = f"could not be loaded ({type(err).__name__}: {_first_line(err)})"
        elif hub_offline():
            why = (
                "the hub cannot be reached from here (no network?)"
                if HUB_STATE["reachable"] is False
                else "HF_HUB_OFFLINE=1 forbids downloading it"
            )
            problem = f"is not in the local Hugging Face cache ({hub_cache_dir()}) and {why}"
        else:
            problem = f"could not be downloaded ({type(err).__name__}: {_first_line(err)})"
        raise MissingWeightsError(kind, backend, model, problem, hub_id=hub_id) from err


def diffusers_dtype(dtype: object) -> dict:
    """The ``from_pretrained`` keyword for a pipeline dtype: diffusers 0.42 renamed
    ``torch_dtype`` to ``dtype`` (the old name warns); older releases know only ``torch_dtype``."""
    import diffusers
    from packaging.version import Version

    new = Version(diffusers.__version__).release >= (0, 42)
    return {"dtype": dtype} if new else {"torch_dtype": dtype}


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else "no message"
