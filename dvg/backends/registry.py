"""Backend specification (what the config names) and explicit name -> class registries."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import torch

T = TypeVar("T")

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class BackendSpec:
    """Which backend to build and how.

    Attributes:
        name: registry name, e.g. ``"dpt"``.
        model: hub id or local path (directory or file); ``None`` takes the backend's default.
        device: ``"auto"`` (cuda when available, else cpu) or a torch device string.
        dtype: ``"auto"`` (float16 on cuda, float32 on cpu), ``"float32"``, ``"float16"`` or
            ``"bfloat16"``.
        batch_size: frames (or frame pairs) per model call.
        options: backend-specific settings, listed in docs/backends.md.
    """

    name: str
    model: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("BackendSpec.name must be a registry name, got an empty string")
        if self.dtype != "auto" and self.dtype not in _DTYPES:
            raise ValueError(
                f"BackendSpec.dtype must be 'auto' or one of {sorted(_DTYPES)}, got {self.dtype!r}"
            )
        if self.batch_size < 1:
            raise ValueError(f"BackendSpec.batch_size must be >= 1, got {self.batch_size}")
        if not isinstance(self.options, Mapping):
            raise ValueError(
                f"BackendSpec.options must be a mapping, got {type(self.options).__name__}"
            )

    def to_dict(self) -> dict:
        """Plain, JSON-serialisable form (recorded with every shard)."""
        return {
            "name": self.name,
            "model": self.model,
            "device": self.device,
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "options": dict(self.options),
        }

    def torch_device(self) -> torch.device:
        """The resolved device: ``"auto"`` -> cuda if available, else cpu."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def torch_dtype(self, device: torch.device | None = None) -> torch.dtype:
        """The resolved dtype: ``"auto"`` -> float16 on cuda, float32 elsewhere."""
        if self.dtype == "auto":
            device = device or self.torch_device()
            return torch.float16 if device.type == "cuda" else torch.float32
        return _DTYPES[self.dtype]

    def option(self, key: str, default: Any) -> Any:
        """``options[key]`` or ``default``."""
        return self.options.get(key, default)


class Backend:
    """What every backend class declares, so ``check_weights`` can vet it without loading it.

    Attributes:
        name: registry name (set by ``Registry.register``).
        needs_weights: False for weights-free backends (OpenCV, sidecar files).
        default_model: hub id or file name used when ``spec.model`` is None.
        weights_marker: a file every saved model of this kind holds (``config.json`` for
            transformers, ``model_index.json`` for diffusers pipelines); None for single files.
        local_only: True when weights cannot come from the hub (RAFT checkpoints).
        download_hint: how to obtain the weights, when not ``huggingface-cli download``.
        model_id: the resolved hub id or path of a built backend (recorded in metadata).
    """

    name: ClassVar[str]
    needs_weights: ClassVar[bool] = True
    default_model: ClassVar[str | None] = None
    weights_marker: ClassVar[str | None] = None
    local_only: ClassVar[bool] = False
    download_hint: ClassVar[str | None] = None
    model_id: str

    @classmethod
    def resolve_model(cls, spec: BackendSpec) -> str:
        """``spec.model`` or the backend's default (an empty string for weights-free ones)."""
        return spec.model or cls.default_model or ""


class Registry(Generic[T]):
    """Explicit name -> backend class table; classes join it with ``@REGISTRY.register(name)``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: add the class under ``name`` and set its ``name`` attribute."""

        def add(cls: type[T]) -> type[T]:
            if name in self._classes:
                raise ValueError(f"{self.kind} backend {name!r} is already registered")
            cls.name = name  # type: ignore[attr-defined]
            self._classes[name] = cls
            return cls

        return add

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._classes)

    def get(self, name: str) -> type[T]:
        """The class registered under ``name``; unknown names raise ``ValueError``."""
        try:
            return self._classes[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} backend {name!r}; known: {', '.join(self.names())}"
            ) from None

    def create(self, spec: BackendSpec) -> T:
        """Build (and load) the backend named by ``spec.name``."""
        return self.get(spec.name)(spec)  # type: ignore[call-arg]

    def __contains__(self, name: object) -> bool:
        return name in self._classes
