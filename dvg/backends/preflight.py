"""Preflight, run before any work starts: are the weights of the configured backends reachable?

Lives apart from :mod:`dvg.backends.weights` (which the backend modules import) so that it can
import the registries at module level without an import cycle.
"""

from __future__ import annotations

from huggingface_hub import try_to_load_from_cache

from dvg.backends.depth import DEPTH_BACKENDS
from dvg.backends.flow import FLOW_BACKENDS
from dvg.backends.inpaint import INPAINT_BACKENDS
from dvg.backends.registry import BackendSpec, Registry
from dvg.backends.weights import (
    MissingWeightsError,
    find_local,
    hub_cache_dir,
    hub_offline,
    looks_like_path,
)

REGISTRIES: dict[str, Registry] = {
    "depth": DEPTH_BACKENDS,
    "inpaint": INPAINT_BACKENDS,
    "flow": FLOW_BACKENDS,
}


def check_weights(kind: str, spec: BackendSpec) -> None:
    """Cheap preflight, run before any work starts: are the weights of ``spec`` reachable?

    Weights-free backends always pass. A local path must exist (a folder must hold the
    backend's marker file); a hub id must be in the local cache when ``HF_HUB_OFFLINE`` is set
    (online, the download happens at load time, so this returns).

    Raises:
        ValueError: unknown ``kind`` or backend name.
        MissingWeightsError: as above.
    """
    if kind not in REGISTRIES:
        raise ValueError(f"kind must be one of {sorted(REGISTRIES)}, got {kind!r}")
    cls = REGISTRIES[kind].get(spec.name)
    if not cls.needs_weights:
        return
    model = cls.resolve_model(spec)
    local = find_local(model)
    if local is not None:
        marker = cls.weights_marker
        if marker and local.is_dir() and not (local / marker).is_file():
            raise MissingWeightsError(
                kind,
                spec.name,
                model,
                f"is a folder without {marker} (not a saved model)",
                hub_id=cls.default_model,
            )
        return
    if looks_like_path(model) or cls.local_only:
        raise MissingWeightsError(
            kind,
            spec.name,
            model,
            "does not exist",
            download=cls.download_hint,
            hub_id=cls.default_model,
        )
    if not hub_offline():
        return
    cached = try_to_load_from_cache(model, cls.weights_marker, cache_dir=hub_cache_dir())
    if not isinstance(cached, str):
        raise MissingWeightsError(
            kind,
            spec.name,
            model,
            f"is not in the local Hugging Face cache ({hub_cache_dir()}) and HF_HUB_OFFLINE=1 "
            "forbids downloading it",
        )
