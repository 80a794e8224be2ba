"""Procedural surface textures, evaluated exactly at continuous surface coordinates.

A texture maps surface coordinates ``coords: (N, 2)`` (world units along the surface's u and v
axes, float64) to colours ``(N, 3)`` in [0, 1]. Nothing is rasterised in advance, so a ray-cast
render samples the true continuous pattern and carries no texture-lookup aliasing of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch


class Texture(Protocol):
    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        """coords: (N, 2) float64 surface coordinates -> (N, 3) float64 colours in [0, 1]."""
        ...


@dataclass(frozen=True, eq=False)
class SinusoidTexture:
    """Band-limited colour ``c(s) = mean_c + sum_k amplitude_kc sin(2 pi f_k . s + phase_kc)``.

    Attributes:
        mean: (3,) base colour.
        frequencies: (K, 2) spatial frequencies in cycles per world unit.
        phases: (K, 3) phases in radians, per wave and channel.
        amplitudes: (K, 3) non-negative amplitudes; ``mean_c +- sum_k amplitude_kc`` lies in [0, 1].
    """

    mean: torch.Tensor
    frequencies: torch.Tensor
    phases: torch.Tensor
    amplitudes: torch.Tensor

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        min_period: float,
        num_waves: int = 4,
        contrast: float = 0.35,
        mean: tuple[float, float, float] | None = None,
    ) -> SinusoidTexture:
        """Random waves whose periods are all >= ``min_period`` world units (the band limit).

        ``contrast`` bounds the summed amplitude per channel (also by the distance of the mean
        colour to 0 and 1, so colours never clip).
        """
        if min_period <= 0:
            raise ValueError(f"min_period must be > 0, got {min_period}")
        base = rng.uniform(0.25, 0.75, size=3) if mean is None else np.asarray(mean, float)
        # |f| in [0.3, 1] / min_period: no wave is shorter than min_period.
        radius = rng.uniform(0.3, 1.0, size=num_waves) / min_period
        angle = rng.uniform(0.0, math.pi, size=num_waves)
        frequencies = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
        weights = rng.uniform(0.5, 1.0, size=(num_waves, 3))
        budget = np.minimum(np.minimum(base, 1.0 - base), contrast)
        amplitudes = weights / weights.sum(axis=0, keepdims=True) * budget
        phases = rng.uniform(0.0, 2 * math.pi, size=(num_waves, 3))
        return cls(
            *(
                torch.as_tensor(a, dtype=torch.float64)
                for a in (base, frequencies, phases, amplitudes)
            )
        )

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        arg = 2 * math.pi * (coords @ self.frequencies.T)  # (N, K)
        waves = torch.sin(arg[:, :, None] + self.phases)  # (N, K, 3)
        return self.mean + (waves * self.amplitudes).sum(dim=1)


@dataclass(frozen=True, eq=False)
class CheckerTexture:
    """Checkerboard of two colours mixed with a sinusoid texture: ``(1 - w) checker + w waves``.

    Attributes:
        cell: checker cell size in world units.
        colors: (2, 3) the two cell colours.
        offset: (2,) checker phase in world units (keeps cell edges off special coordinates).
        waves: the sinusoid texture mixed in.
        mix: weight ``w`` of ``waves`` in [0, 1].
    """

    cell: float
    colors: torch.Tensor
    offset: torch.Tensor
    waves: SinusoidTexture
    mix: float = 0.4

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        cell: float,
        min_period: float | None = None,
        colors: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None,
        mix: float = 0.4,
    ) -> CheckerTexture:
        """Random phase, waves with periods >= ``min_period`` (default ``cell``) and, unless
        given, random colours."""
        drawn = rng.uniform(0.1, 0.9, size=(2, 3)) if colors is None else np.asarray(colors)
        offset = rng.uniform(0.0, cell, size=2)
        waves = SinusoidTexture.random(rng, min_period or cell)
        return cls(
            cell,
            torch.as_tensor(drawn, dtype=torch.float64),
            torch.as_tensor(offset, dtype=torch.float64),
            waves,
            mix,
        )

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        cells = torch.floor((coords + self.offset) / self.cell).sum(dim=1)
        odd = torch.remainder(cells, 2.0)[:, None]
        checker = self.colors[0] * (1 - odd) + self.colors[1] * odd
        return (1 - self.mix) * checker + self.mix * self.waves(coords)


@dataclass(frozen=True, eq=False)
class ImageTexture:
    """An image tiled over the surface and sampled bilinearly (repeating at its borders).

    Texel ``(row i, col j)`` has its centre at surface coordinates ``(j, i) * texel_size``.

    Attributes:
        image: (3, h, w) colours in [0, 1].
        texel_size: world units per texel.
    """

    image: torch.Tensor
    texel_size: float

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[0] != 3:
            raise ValueError(f"image must be (3, h, w), got {tuple(self.image.shape)}")
        if self.texel_size <= 0:
            raise ValueError(f"texel_size must be > 0, got {self.texel_size}")

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        image = torch.as_tensor(self.image, dtype=torch.float64)
        _, h, w = image.shape
        x = coords[:, 0] / self.texel_size
        y = coords[:, 1] / self.texel_size
        x0, y0 = torch.floor(x), torch.floor(y)
        ax, ay = (x - x0)[:, None], (y - y0)[:, None]
        i0 = torch.remainder(y0.long(), h)
        j0 = torch.remainder(x0.long(), w)
        i1, j1 = torch.remainder(i0 + 1, h), torch.remainder(j0 + 1, w)
        flat = image.reshape(3, -1).T  # (h * w, 3)

        def texel(i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
            return flat[i * w + j]

        top = texel(i0, j0) * (1 - ax) + texel(i0, j1) * ax
        bottom = texel(i1, j0) * (1 - ax) + texel(i1, j1) * ax
        return top * (1 - ay) + bottom * ay
