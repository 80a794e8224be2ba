"""The VAE classes a model directory may hold, and the loader that picks one by its config.

SVD's VAE is a diffusers ``AutoencoderKLTemporalDecoder``; every real checkpoint holds one. The
micro preset's stage 0 (`trainer fit-vae --kind linear`) may instead fit a
:class:`LinearAutoencoder`: no autoencoder a CPU trains in minutes reconstructs the micro scenes'
disoccluded regions beyond ~18 dB (docs/benchmarks.md, "What caps the micro reproduction"), which
capped what the diffusion model could show, while a linear one fitted in closed form reaches
~29 dB. Both speak the diffusers VAE interface the model uses (``encode(x).latent_dist``,
``decode(z, num_frames).sample``, ``config.scaling_factor``), are saved with ``save_pretrained``
(config.json + safetensors) and are loaded by :func:`load_vae`, which reads the class name from
the saved config and only instantiates classes of :data:`VAE_CLASSES` (never arbitrary code).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKLTemporalDecoder
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .loading import ComponentLoadError, _offline_hint, load_component


class LinearAutoencoder(ModelMixin, ConfigMixin):
    """A linear autoencoder over ``patch_size`` x ``patch_size`` patches (stage 0, closed form).

    Encoder: each patch (3 p^2 values in [-1, 1]) minus the training mean, projected on the top
    ``latent_channels`` principal components (a stride-p convolution): orthonormal, so a
    squared error between latents is the squared error between the patches' projections, and
    the diffusion loss in latent space is a pixel-space loss. Decoder: the least-squares linear
    map from each latent cell's ``decoder_kernel`` x ``decoder_kernel`` neighbourhood back to its
    patch (a convolution, then pixel shuffle), which blends neighbouring cells as a smooth
    upsampler would. Deterministic: the posterior has zero variance and no KL term.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        latent_channels: int = 4,
        patch_size: int = 2,
        decoder_kernel: int = 3,
        sample_size: int = 64,
        scaling_factor: float = 1.0,
        force_upcast: bool = False,
    ) -> None:
        super().__init__()
        if decoder_kernel % 2 != 1:
            raise ValueError(f"decoder_kernel must be odd, got {decoder_kernel}")
        self.encoder = nn.Conv2d(in_channels, latent_channels, patch_size, stride=patch_size)
        self.decoder = nn.Conv2d(
            latent_channels,
            in_channels * patch_size**2,
            decoder_kernel,
            padding=decoder_kernel // 2,
        )
        self.shuffle = nn.PixelShuffle(patch_size)

    def encode(
        self, x: torch.Tensor, return_dict: bool = True
    ) -> AutoencoderKLOutput | tuple[DiagonalGaussianDistribution]:
        """x: (N, 3, H, W) in [-1, 1], H and W multiples of patch_size -> (N, C, H/p, W/p)."""
        mean = self.encoder(x)
        posterior = DiagonalGaussianDistribution(
            torch.cat([mean, torch.zeros_like(mean)], dim=1), deterministic=True
        )
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    def decode(
        self, z: torch.Tensor, num_frames: int | None = None, return_dict: bool = True
    ) -> DecoderOutput | tuple[torch.Tensor]:
        """z: (N, C, h, w) -> (N, 3, p h, p w). Frame by frame: ``num_frames`` (the temporal
        decoder's window) does not change the result."""
        sample = self.shuffle(self.decoder(z))
        return DecoderOutput(sample=sample) if return_dict else (sample,)

    @torch.no_grad()
    def fit(self, frames: torch.Tensor, chunk: int = 256) -> None:
        """Fit encoder (PCA) then decoder (least squares) to ``frames`` (N, 3, H, W) in [-1, 1].

        Accumulates the patch covariance and the decoder's normal equations in float64 over
        chunks of frames, so memory does not grow with N.
        """
        p, c = self.config.patch_size, self.config.latent_channels
        dims = self.config.in_channels * p * p
        if c > dims:
            raise ValueError(f"latent_channels {c} exceeds the {dims} values of a patch")
        chunks = [frames[i : i + chunk].double() for i in range(0, len(frames), chunk)]
        total = torch.zeros(dims, dtype=torch.float64)
        outer = torch.zeros(dims, dims, dtype=torch.float64)
        count = 0
        for part in chunks:
            patches = nn.functional.pixel_unshuffle(part, p).transpose(0, 1).flatten(1)
            total += patches.sum(1)
            outer += patches @ patches.T
            count += patches.shape[1]
        mean = total / count
        covariance = outer / count - torch.outer(mean, mean)
        _, vectors = torch.linalg.eigh(covariance)  # ascending eigenvalues
        basis = vectors[:, -c:].flip(1).T  # (C, dims), largest variance first
        self.encoder.weight.copy_(basis.view(c, -1, p, p).to(self.encoder.weight.dtype))
        self.encoder.bias.copy_((-(basis @ mean)).to(self.encoder.bias.dtype))

        k = self.config.decoder_kernel
        width = c * k * k + 1
        normal = torch.zeros(width, width, dtype=torch.float64)
        moment = torch.zeros(width, dims, dtype=torch.float64)
        weight, bias = self.encoder.weight.double(), self.encoder.bias.double()
        for part in chunks:
            latents = nn.functional.conv2d(part, weight, bias, stride=p)
            # unfold orders a column as (channel, row, column), as Conv2d's weight flattens.
            columns = nn.functional.unfold(latents, k, padding=k // 2).transpose(1, 2)
            columns = torch.cat([columns, columns.new_ones(*columns.shape[:2], 1)], 2)
            columns = columns.flatten(0, 1)
            targets = nn.functional.pixel_unshuffle(part, p).flatten(2).transpose(1, 2)
            normal += columns.T @ columns
            moment += columns.T @ targets.flatten(0, 1)
        solution = torch.linalg.lstsq(normal, moment).solution  # (c k k + 1, dims)
        self.decoder.weight.copy_(solution[:-1].T.reshape(dims, c, k, k))
        self.decoder.bias.copy_(solution[-1])


VAE_CLASSES: dict[str, type] = {
    "AutoencoderKLTemporalDecoder": AutoencoderKLTemporalDecoder,
    "LinearAutoencoder": LinearAutoencoder,
}
"""The VAE classes a model directory may name in its vae/config.json ``_class_name``."""


def load_vae(
    source: str, subfolder: str | None, role: str, torch_dtype: torch.dtype | None = None
) -> Any:
    """The VAE in ``source`` (hub id or directory; ``subfolder`` inside it), of the class its
    config names (:data:`VAE_CLASSES`); a missing model or an unknown class -> ComponentLoadError.
    """
    kwargs = {"subfolder": subfolder} if subfolder else {}
    where = f"'{source}'" + (f" (subfolder '{subfolder}')" if subfolder else "")
    try:
        config = AutoencoderKLTemporalDecoder.load_config(source, **kwargs)
    except OSError as error:
        raise ComponentLoadError(
            f"cannot load the {role} from {where}: {error}.{_offline_hint()}"
        ) from error
    name = config.get("_class_name", "AutoencoderKLTemporalDecoder")
    if name not in VAE_CLASSES:
        raise ComponentLoadError(
            f"cannot load the {role} from {where}: its config names class {name!r}; known VAE "
            f"classes are {', '.join(sorted(VAE_CLASSES))}"
        )
    return load_component(VAE_CLASSES[name], source, subfolder, role, torch_dtype)


def vae_scale_factor(vae: Any) -> int:
    """Pixels per latent cell: the patch of a LinearAutoencoder, else 2 per down block after the
    first (8 for SVD's VAE)."""
    if isinstance(vae, LinearAutoencoder):
        return vae.config.patch_size
    return 2 ** (len(vae.config.block_out_channels) - 1)
