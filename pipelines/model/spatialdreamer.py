"""The SpatialDreamer model: SVD denoising U-Net + RefinerNet + TIL + stereo deviation strength.

Paper 3.3-3.4. Input channel layout of the denoising U-Net (9 channels, one frame):
[noisy target latents (4) | masked target-view latents x1~ (4, where SVD fed its conditioning-image
latents) | occlusion mask M (1, new, zero-initialised weights)]. See docs/model.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch
import transformers
from diffusers import (
    AutoencoderKLTemporalDecoder,
    EulerDiscreteScheduler,
    UNet2DConditionModel,
    UNetSpatioTemporalConditionModel,
)
from diffusers.models.attention_processor import AttnProcessor2_0
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import CLIPVisionModelWithProjection

from .autoencoders import LinearAutoencoder, load_vae, vae_scale_factor
from .config import (
    DEVIATION_WEIGHTS_NAME,
    SVD_IN_CHANNELS,
    TIL_WEIGHTS_NAME,
    UNET_IN_CHANNELS,
    ModelConfig,
    read_model_config,
    write_model_config,
)
from .deviation import DeviationEmbedding
from .loading import load_component, load_optional_component, refiner_subfolder
from .reference_attention import ReferencePair, pair_reference_attention
from .til import TemporalInteraction

try:  # transformers >= 5 names the slow (PIL) CLIP processor explicitly
    from transformers import CLIPImageProcessorPil as CLIPImageProcessor
except ImportError:  # pragma: no cover - transformers 4.x
    from transformers import CLIPImageProcessor

# transformers renamed from_pretrained's torch_dtype to dtype in 4.56.
_TRANSFORMERS_DTYPE_KEYWORD = (
    "dtype"
    if tuple(int(p) for p in transformers.__version__.split(".")[:2]) >= (4, 56)
    else "torch_dtype"
)

# OpenAI CLIP normalisation, used when no feature extractor config is available.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Parameter-name markers of SVD's temporal layers (diffusers naming): the temporal transformer
# blocks and temporal res blocks, plus the learned spatial/temporal blend (time_mixer) and the
# frame-position embedding (time_pos_embed) that only feeds the temporal path.
TEMPORAL_MARKERS = (
    "temporal_transformer_blocks",
    "temporal_res_block",
    "time_mixer",
    "time_pos_embed",
)


def svd_resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """diffusers' ``_resize_with_antialiasing`` (Gaussian blur + bicubic), the resize SVD's CLIP
    input gets. Imported on first use with transformers' logging quietened: importing the SVD
    pipeline module makes transformers warn that torchvision is missing (it is not needed)."""
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
            _resize_with_antialiasing,
        )
    finally:
        logging.set_verbosity(verbosity)
    return _resize_with_antialiasing(images, size)


def is_temporal_parameter(name: str) -> bool:
    """Whether a denoising U-Net parameter name belongs to its temporal layers (paper 3.5)."""
    return any(marker in name for marker in TEMPORAL_MARKERS)


def widen_conv_in(unet: UNetSpatioTemporalConditionModel) -> None:
    """SVD's conv_in 8 -> 9 input channels; the new mask channel's weights are zero (paper 3.3)."""
    old = unet.conv_in
    if old.in_channels != SVD_IN_CHANNELS:
        raise ValueError(
            f"expected an SVD U-Net with {SVD_IN_CHANNELS} input channels, got {old.in_channels}"
        )
    new = nn.Conv2d(
        UNET_IN_CHANNELS,
        old.out_channels,
        kernel_size=old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        device=old.weight.device,
        dtype=old.weight.dtype,
    )
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, :SVD_IN_CHANNELS] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=UNET_IN_CHANNELS)


class SpatialDreamerModel(nn.Module):
    """Denoising U-Net (SVD, 9 input channels) reading reference attention from the RefinerNet.

    Frozen: vae (AutoencoderKLTemporalDecoder; the micro preset's may be a LinearAutoencoder)
    and image_encoder (CLIPVisionModelWithProjection).
    Trainable by stage (see trainable_groups): unet, refiner, til (stage 2), deviation_embedding.
    """

    def __init__(
        self,
        config: ModelConfig,
        unet: UNetSpatioTemporalConditionModel,
        refiner: UNet2DConditionModel,
        vae: AutoencoderKLTemporalDecoder | LinearAutoencoder,
        image_encoder: CLIPVisionModelWithProjection,
        feature_extractor: CLIPImageProcessor | None = None,
        scheduler: EulerDiscreteScheduler | None = None,
    ) -> None:
        super().__init__()
        if unet.config.in_channels != UNET_IN_CHANNELS:
            raise ValueError(
                f"the denoising U-Net must have {UNET_IN_CHANNELS} input channels (widened SVD), "
                f"got {unet.config.in_channels}; build the model with from_components"
            )
        self.config = config
        self.unet = unet
        self.refiner = refiner
        self.vae = vae.requires_grad_(False).eval()
        self.image_encoder = image_encoder.requires_grad_(False).eval()
        self.feature_extractor = feature_extractor
        self.scheduler = scheduler
        self.pairs: list[ReferencePair] = pair_reference_attention(
            unet,
            refiner,
            unet_label=f"denoising U-Net from '{config.svd}'",
            refiner_label=f"RefinerNet from '{config.refiner}'",
        )
        time_embedding = unet.time_embedding
        self.deviation_embedding = DeviationEmbedding(
            proj_channels=time_embedding.linear_1.in_features,
            embed_dim=time_embedding.linear_2.out_features,
            scale=config.deviation_scale,
        ).to(device=unet.device, dtype=unet.dtype)
        self.til: nn.ModuleList | None = None
        if config.til:
            self.til = self._build_til()
        # The deviation embedding is added to SVD's (B, C) time embedding before it is repeated
        # per frame: a hook on unet.time_embedding keeps diffusers' forward untouched.
        self._pending_deviation: torch.Tensor | None = None
        unet.time_embedding.register_forward_hook(self._add_deviation)

    # ----------------------------------------------------------------------------- building
    def _build_til(self) -> nn.ModuleList:
        modules = nn.ModuleList(
            TemporalInteraction(
                pair.channels, pair.heads, self.config.til_lambda, self.config.til_frames
            )
            for pair in self.pairs
        )
        return modules.to(device=self.unet.device, dtype=self.unet.dtype)

    def enable_til(self) -> None:
        """Add zero-initialised TIL modules (stage 2 from a stage-1 model): output unchanged."""
        if self.til is not None:
            return
        self.til = self._build_til()
        self.config = replace(self.config, til=True)

    @classmethod
    def from_components(
        cls, config: ModelConfig, *, torch_dtype: torch.dtype | None = None
    ) -> SpatialDreamerModel:
        """Assemble the model from SVD (config.svd) and SD2.1 (config.refiner), hub ids or dirs.

        Widens the U-Net's conv_in, pairs the reference attention, adds TIL if config.til.
        A missing model raises loading.ComponentLoadError naming it; a RefinerNet whose blocks do
        not pair with the U-Net raises reference_attention.ReferencePairingError (a ValueError).
        """
        unet = load_component(
            UNetSpatioTemporalConditionModel, config.svd, "unet", "SVD denoising U-Net", torch_dtype
        )
        vae = load_vae(config.svd, "vae", "SVD VAE", torch_dtype)
        image_encoder = load_component(
            CLIPVisionModelWithProjection,
            config.svd,
            "image_encoder",
            "SVD CLIP image encoder",
            torch_dtype,
            dtype_keyword=_TRANSFORMERS_DTYPE_KEYWORD,
        )
        refiner = load_component(
            UNet2DConditionModel,
            config.refiner,
            refiner_subfolder(config.refiner),
            "SD2.1 RefinerNet U-Net",
            torch_dtype,
        )
        feature_extractor = load_optional_component(
            CLIPImageProcessor, config.svd, "feature_extractor"
        )
        scheduler = load_optional_component(EulerDiscreteScheduler, config.svd, "scheduler")
        widen_conv_in(unet)
        return cls(config, unet, refiner, vae, image_encoder, feature_extractor, scheduler)

    # ------------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | Path) -> None:
        """Write unet/, refiner/, vae/, image_encoder/, [feature_extractor/, scheduler/],
        [til.safetensors], deviation_embedding.safetensors and spatialdreamer.json."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.unet.save_pretrained(directory / "unet")
        self.refiner.save_pretrained(directory / "refiner")
        self.vae.save_pretrained(directory / "vae")
        self.image_encoder.save_pretrained(directory / "image_encoder")
        if self.feature_extractor is not None:
            self.feature_extractor.save_pretrained(directory / "feature_extractor")
        if self.scheduler is not None:
            self.scheduler.save_pretrained(directory / "scheduler")
        if self.til is not None:
            save_file(_contiguous(self.til.state_dict()), directory / TIL_WEIGHTS_NAME)
        save_file(
            _contiguous(self.deviation_embedding.state_dict()), directory / DEVIATION_WEIGHTS_NAME
        )
        write_model_config(self.config, directory)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, torch_dtype: torch.dtype | None = None
    ) -> SpatialDreamerModel:
        """Load a directory written by save_pretrained (or `trainer export`)."""
        directory = Path(directory)
        config = read_model_config(directory)
        root = str(directory)
        unet = load_component(
            UNetSpatioTemporalConditionModel, root, "unet", "denoising U-Net", torch_dtype
        )
        refiner = load_component(UNet2DConditionModel, root, "refiner", "RefinerNet", torch_dtype)
        vae = load_vae(root, "vae", "VAE", torch_dtype)
        image_encoder = load_component(
            CLIPVisionModelWithProjection,
            root,
            "image_encoder",
            "CLIP image encoder",
            torch_dtype,
            dtype_keyword=_TRANSFORMERS_DTYPE_KEYWORD,
        )
        feature_extractor = load_optional_component(CLIPImageProcessor, root, "feature_extractor")
        scheduler = load_optional_component(EulerDiscreteScheduler, root, "scheduler")
        model = cls(config, unet, refiner, vae, image_encoder, feature_extractor, scheduler)
        _load_weights(model.deviation_embedding, directory / DEVIATION_WEIGHTS_NAME)
        if model.til is not None:
            _load_weights(model.til, directory / TIL_WEIGHTS_NAME)
        return model

    # --------------------------------------------------------------------------- training
    def trainable_groups(self) -> dict[str, list[nn.Parameter]]:
        """Partition of the parameters of unet, refiner, til and deviation_embedding.

        unet_conv_in: the widened input conv; unet_temporal: U-Net parameters whose name contains
        one of TEMPORAL_MARKERS; unet_spatial: every other U-Net parameter (spatial res blocks,
        spatial transformers, time/added-time embeddings, conv_out); til: empty without TIL.
        """
        groups: dict[str, list[nn.Parameter]] = {
            "unet_spatial": [],
            "unet_temporal": [],
            "unet_conv_in": [],
            "refiner": list(self.refiner.parameters()),
            "til": list(self.til.parameters()) if self.til is not None else [],
            "deviation": list(self.deviation_embedding.parameters()),
        }
        for name, parameter in self.unet.named_parameters():
            if name.startswith("conv_in."):
                groups["unet_conv_in"].append(parameter)
            elif is_temporal_parameter(name):
                groups["unet_temporal"].append(parameter)
            else:
                groups["unet_spatial"].append(parameter)
        return groups

    def train(self, mode: bool = True) -> SpatialDreamerModel:
        super().train(mode)
        # The frozen encoders stay in eval mode whatever the training stage.
        self.vae.eval()
        self.image_encoder.eval()
        return self

    # ----------------------------------------------------------------------- conditioning
    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell: 8 for SVD's VAE, 2 for the micro preset's stage-0 VAE."""
        return vae_scale_factor(self.vae)

    @contextlib.contextmanager
    def _vae_precision(self) -> Iterator[torch.dtype]:
        """Run the VAE in float32 when it is half precision and its config sets ``force_upcast``
        (SVD's does: its decoder overflows in float16), as diffusers' SVD pipeline does around
        every encode and decode; bfloat16 is upcast too (range is not its problem, but the
        conditioning latents lose precision). Yields the dtype the VAE runs in."""
        vae = self.vae
        dtype = next(vae.parameters()).dtype
        upcast = dtype in (torch.float16, torch.bfloat16) and getattr(
            vae.config, "force_upcast", False
        )
        if upcast:
            vae.to(torch.float32)
        try:
            yield torch.float32 if upcast else dtype
        finally:
            if upcast:
                vae.to(dtype)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, H, W) in [-1, 1] -> latents (N, 4, H/k, W/k) x vae scaling_factor, k =
        ``vae_scale_factor``.

        Uses the posterior mode (deterministic), as SVD does for its conditioning latents.
        """
        _check_images(images, "encode_images")
        with self._vae_precision() as vae_dtype:
            posterior = self.vae.encode(images.to(vae_dtype)).latent_dist
            return posterior.mode() * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, num_frames: int) -> torch.Tensor:
        """latents: (N, 4, h, w) as encode_images gives, N = clips x frames -> (N, 3, kh, kw), k =
        ``vae_scale_factor``."""
        with self._vae_precision() as vae_dtype:
            scaled = latents.to(vae_dtype) / self.vae.config.scaling_factor
            return self.vae.decode(scaled, num_frames=num_frames).sample

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, H, W) in [-1, 1] -> CLIP image_embeds (N, 1, D), as SVD conditions.

        The preprocessing of diffusers' ``StableVideoDiffusionPipeline._encode_image``: resize to
        the encoder's size with its Gaussian-antialiased bicubic resize (on [-1, 1], as the
        original implementation does), back to [0, 1], then the feature extractor's
        normalisation, done in torch so the images stay on their device.
        """
        _check_images(images, "image_embeddings")
        size = self.image_encoder.config.image_size
        pixels = svd_resize(images.float(), (size, size))
        pixels = (pixels + 1.0) / 2.0
        mean, std = CLIP_MEAN, CLIP_STD
        if self.feature_extractor is not None:
            mean = self.feature_extractor.image_mean or mean
            std = self.feature_extractor.image_std or std
        mean_t = torch.tensor(mean, device=pixels.device).view(1, -1, 1, 1)
        std_t = torch.tensor(std, device=pixels.device).view(1, -1, 1, 1)
        pixels = (pixels - mean_t) / std_t
        encoder_dtype = next(self.image_encoder.parameters()).dtype
        embeds = self.image_encoder(pixel_values=pixels.to(encoder_dtype)).image_embeds
        return embeds.unsqueeze(1)

    def unet_input(
        self, noisy_latents: torch.Tensor, masked_latents: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """The 9-channel U-Net input (B, F, 9, h, w) = [noisy, masked / scaling_factor, mask].

        masked_latents come in encode_images scale; SVD fed its conditioning latents unscaled
        (posterior mode), so they are divided by the VAE scaling factor to keep the pretrained
        input channels meaningful.
        """
        conditioning = masked_latents / self.vae.config.scaling_factor
        return torch.cat(
            [noisy_latents, conditioning.to(noisy_latents.dtype), mask.to(noisy_latents.dtype)],
            dim=2,
        )

    # ----------------------------------------------------------------------------- forward
    def reference_bank(
        self, reference_latents: torch.Tensor, image_embeddings: torch.Tensor
    ) -> list[torch.Tensor]:
        """The reference tokens of every paired layer: RefinerNet (write mode) on x2 + TIL.

        reference_latents: (B, F, 4, h, w) latents of the reference view (encode_images scale);
        image_embeddings: (B, 1, D). Returns one (B*F, L_k, C_k) tensor per ReferencePair.

        The RefinerNet runs on the clean reference latents at timestep 0 (the ReferenceNet
        family's choice; the paper gives it no noise level) and TIL mixes only reference tokens
        of neighbouring frames (Eq. 3), so the bank depends on neither the noisy latents nor the
        noise level: a sampler computes it once per window and passes it to every step's
        ``forward(reference_bank=...)``.
        """
        batch, frames = reference_latents.shape[:2]
        reference_context = image_embeddings.repeat_interleave(frames, dim=0)
        refiner_dtype = self.refiner.dtype
        self.refiner(
            reference_latents.flatten(0, 1).to(refiner_dtype),
            torch.zeros(batch * frames, device=reference_latents.device),
            encoder_hidden_states=reference_context.to(refiner_dtype),
        )
        bank = []
        for index, pair in enumerate(self.pairs):
            tokens = pair.write.tokens
            if self.til is not None:
                tokens = self.til[index](tokens, frames)
            bank.append(tokens)
        return bank

    def forward(
        self,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        masked_latents: torch.Tensor,
        mask: torch.Tensor,
        reference_latents: torch.Tensor,
        image_embeddings: torch.Tensor,
        added_time_ids: torch.Tensor,
        deviation: torch.Tensor | None = None,
        reference_bank: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """One denoising U-Net evaluation with reference attention (paper Fig. 2).

        noisy_latents: (B, F, 4, h, w), already scaled by c_in; timesteps: (B,) continuous
        (0.25 ln sigma); masked_latents: (B, F, 4, h, w) latents of x1~ (encode_images scale);
        mask: (B, F, 1, h, w) in {0, 1} at latent resolution, 1 = occluded; reference_latents:
        (B, F, 4, h, w) latents of x2 (encode_images scale); image_embeddings: (B, 1, D) CLIP
        embedding of the reference view; added_time_ids: (B, 3) [fps - 1, motion_bucket_id,
        noise_aug_strength]; deviation: (B,) stereo deviation strength s, None ->
        config.default_deviation; reference_bank: ``reference_bank(reference_latents,
        image_embeddings)`` computed once for several calls (None: computed here).
        Returns the U-Net output (B, F, 4, h, w).
        """
        _check_latents(noisy_latents, masked_latents, mask, reference_latents)
        batch, frames = noisy_latents.shape[:2]
        if image_embeddings.ndim != 3 or image_embeddings.shape[0] != batch:
            raise ValueError(
                f"image_embeddings must be (B={batch}, 1, D), got {tuple(image_embeddings.shape)}"
            )
        if added_time_ids.shape != (batch, 3):
            raise ValueError(
                f"added_time_ids must be ({batch}, 3), got {tuple(added_time_ids.shape)}"
            )
        if deviation is None:
            deviation = torch.full(
                (batch,), self.config.default_deviation, device=noisy_latents.device
            )
        if deviation.shape != (batch,):
            raise ValueError(f"deviation must be ({batch},), got {tuple(deviation.shape)}")

        if reference_bank is None:
            reference_bank = self.reference_bank(reference_latents, image_embeddings)
        if len(reference_bank) != len(self.pairs) or reference_bank[0].shape[0] != batch * frames:
            raise ValueError(
                f"reference_bank must hold {len(self.pairs)} tensors of batch*frames = "
                f"{batch * frames} rows (from reference_bank() on this call's reference)"
            )
        for pair, tokens in zip(self.pairs, reference_bank, strict=True):
            # Kept until the next forward: gradient checkpointing re-reads it during backward.
            pair.read.reference = tokens

        self._pending_deviation = self.deviation_embedding(deviation)
        try:
            return self.unet(
                self.unet_input(noisy_latents, masked_latents, mask),
                timesteps,
                encoder_hidden_states=image_embeddings,
                added_time_ids=added_time_ids,
            ).sample
        finally:
            self._pending_deviation = None

    def _add_deviation(
        self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> torch.Tensor | None:
        """Forward hook on unet.time_embedding: add the deviation embedding (paper 3.4.2)."""
        embedding = self._pending_deviation
        if embedding is None:  # the U-Net called on its own (e.g. the conv_in check)
            return None
        if embedding.shape != output.shape:
            raise ValueError(
                f"deviation embedding {tuple(embedding.shape)} does not match the time embedding "
                f"{tuple(output.shape)}"
            )
        return output + embedding.to(output.dtype)

    @contextlib.contextmanager
    def without_reference_attention(self) -> Iterator[None]:
        """Run the denoising U-Net alone: its paired self-attentions use the default processor."""
        modules = [self.unet.get_submodule(pair.unet_name) for pair in self.pairs]
        try:
            for module in modules:
                module.set_processor(AttnProcessor2_0())
            yield
        finally:
            for module, pair in zip(modules, self.pairs, strict=True):
                module.set_processor(pair.read)


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.detach().contiguous() for key, value in state.items()}


def _load_weights(module: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; the model directory is incomplete")
    state = load_file(path, device=str(next(module.parameters()).device))
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit (missing {missing}, unexpected {unexpected})")


def _check_images(images: torch.Tensor, where: str) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"{where}: images must be (N, 3, H, W) in [-1, 1], got {tuple(images.shape)}"
        )


def _check_latents(
    noisy: torch.Tensor, masked: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor
) -> None:
    if noisy.ndim != 5 or noisy.shape[2] != 4:
        raise ValueError(f"noisy_latents must be (B, F, 4, h, w), got {tuple(noisy.shape)}")
    expected_mask = (*noisy.shape[:2], 1, *noisy.shape[3:])
    for name, tensor, shape in (
        ("masked_latents", masked, noisy.shape),
        ("reference_latents", reference, noisy.shape),
        ("mask", mask, expected_mask),
    ):
        if tensor.shape != shape:
            raise ValueError(f"{name} must be {tuple(shape)}, got {tuple(tensor.shape)}")
