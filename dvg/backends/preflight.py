"""Preflight, run before any work starts: are the weights of the configured backends reachable?

:func:`preflight` checks every backend of a run and reports every missing model in one
:class:`PreflightError`. Whether the hub can be reached is found out once per process
(``HF_HUB_OFFLINE`` set, or one short request to the hub endpoint): without it, hub ids must be
in the local cache, and the loaders are told not to try the network (no minute of retries per
model). Lives apart from :mod:`dvg.backends.weights` (which the backend modules import) so that
it can import the registries at module level without an import cycle.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Mapping

from huggingface_hub import try_to_load_from_cache

from dvg.backends import weights
from dvg.backends.depth import DEPTH_BACKENDS
from dvg.backends.flow import FLOW_BACKENDS
from dvg.backends.inpaint import INPAINT_BACKENDS
from dvg.backends.registry import BackendSpec, Registry
from dvg.backends.weights import (
    MissingWeightsError,
    find_local,
    hub_cache_dir,
    looks_like_path,
    offline_by_environment,
)

HUB_TIMEOUT = 3.0  # seconds for the one reachability request


class PreflightError(MissingWeightsError):
    """Several backends lack weights: ``errors`` holds one :class:`MissingWeightsError` each,
    and the message lists them all (so one run shows everything to fetch)."""

    def __init__(self, errors: list[MissingWeightsError]) -> None:
        self.errors = errors
        first = errors[0]
        self.kind, self.backend, self.model = first.kind, first.backend, first.model
        parts = [f"{len(errors)} models are missing (nothing was started or written):"]
        parts += [f"[{i}] {error}" for i, error in enumerate(errors, 1)]
        RuntimeError.__init__(self, "\n\n".join(parts))


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_reachable(timeout: float = HUB_TIMEOUT) -> bool:
    """One request to the hub endpoint (any HTTP answer counts; proxies from the environment
    are used); the answer is kept for the process, and False makes every later hub load
    local-only (:func:`dvg.backends.weights.hub_offline`)."""
    if weights.HUB_STATE["reachable"] is None:
        try:
            request = urllib.request.Request(hub_endpoint(), method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout):
                pass
            reachable = True
        except urllib.error.HTTPError:
            reachable = True  # it answered
        except (urllib.error.URLError, OSError, ValueError):
            reachable = False
        weights.HUB_STATE["reachable"] = reachable
    return bool(weights.HUB_STATE["reachable"])


def preflight_weights(specs: Mapping[str, BackendSpec]) -> None:
    """Check every ``kind -> spec`` before any work starts; raise one error naming them all.

    Raises:
        ValueError: an unknown kind or backend name.
        MissingWeightsError: one backend lacks weights; PreflightError (a subclass) for several.
    """
    errors: list[MissingWeightsError] = []
    for kind, spec in specs.items():
        try:
            check_weights(kind, spec)
        except MissingWeightsError as error:
            errors.append(error)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise PreflightError(errors)


REGISTRIES: dict[str, Registry] = {
    "depth": DEPTH_BACKENDS,
    "inpaint": INPAINT_BACKENDS,
    "flow": FLOW_BACKENDS,
}


def check_weights(kind: str, spec: BackendSpec) -> None:
    """Cheap preflight, run before any work starts: are the weights of ``spec`` reachable?

    Weights-free backends always pass. A local path must exist (a folder must hold the
    backend's marker file); a hub id must be in the local cache when ``HF_HUB_OFFLINE`` is set
    or the hub cannot be reached (:func:`hub_reachable`); with the hub reachable, the download
    happens at load time, so this returns.

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
    offline = offline_by_environment()
    if not offline and hub_reachable():
        return
    cached = try_to_load_from_cache(model, cls.weights_marker, cache_dir=hub_cache_dir())
    if not isinstance(cached, str):
        why = (
            "HF_HUB_OFFLINE=1 forbids downloading it"
            if offline
            else f"the hub ({hub_endpoint()}) cannot be reached from here (no network?)"
        )
        raise MissingWeightsError(
            kind,
            spec.name,
            model,
            f"is not in the local Hugging Face cache ({hub_cache_dir()}) and {why}",
        )
