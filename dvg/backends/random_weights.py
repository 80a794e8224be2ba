"""Random-weight models written in the real on-disk formats, for tests and speed benchmarks.

Every function writes exactly what the matching backend loads in production (a
``save_pretrained`` folder, or a ``module.``-prefixed RAFT ``.pth``), so tests exercise the
same loader code path as users with downloaded weights. ``tiny=True`` builds toy-sized models
(seconds on a CPU); ``tiny=False`` builds the published architectures with random weights,
meant for GPU speed benchmarks only (hundreds of millions of parameters).

Nothing here touches the network: the CLIP tokenizer is a byte-level vocabulary generated
locally (no merges), so prompts tokenise to one token per byte.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Literal

import torch

# CLIP's byte-level BPE maps bytes to printable unicode characters (GPT-2 scheme); the tiny
# vocabulary below uses that alphabet so the real CLIPTokenizer accepts it unchanged.
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"

# Architecture of stabilityai/stable-diffusion-2-inpainting (model_index + component configs).
_SD2_TEXT = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "projection_dim": 512,
    "hidden_act": "gelu",
    "vocab_size": 49408,
    "max_position_embeddings": 77,
}


def _bytes_to_unicode() -> list[str]:
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def save_tiny_clip_tokenizer(path: str | Path, model_max_length: int = 77) -> Path:
    """Write a byte-level CLIP tokenizer (``vocab.json``, ``merges.txt``) to ``path``.

    Vocabulary: the 256 byte symbols, the same with the end-of-word marker ``</w>``, then the
    start/end tokens (514 ids, below the tiny text encoder's 1000).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    symbols = _bytes_to_unicode()
    tokens = symbols + [s + "</w>" for s in symbols] + [_BOS, _EOS]
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (path / "merges.txt").write_text("#version: 0.2\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": model_max_length,
        "bos_token": _BOS,
        "eos_token": _EOS,
        "unk_token": _EOS,
        "pad_token": _EOS,
    }
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    return path


def _tiny_tokenizer():
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        return CLIPTokenizer.from_pretrained(save_tiny_clip_tokenizer(tmp))


def save_random_dpt(
    path: str | Path, tiny: bool = True, hybrid: bool = True, seed: int = 0
) -> Path:
    """``DPTForDepthEstimation`` + ``DPTImageProcessor`` (MiDaS preprocessing) in ``path``.

    ``hybrid=True`` is the ViT-hybrid layout of Intel/dpt-hybrid-midas (a BiT convolutional
    stem feeding the ViT), ``hybrid=False`` the plain ViT of Intel/dpt-large. ``tiny=False`` is
    the published dpt-hybrid-midas size (384 x 384 training input, ~120 M parameters).
    """
    from transformers import BitConfig, DPTConfig, DPTForDepthEstimation

    torch.manual_seed(seed)
    size = 32 if tiny else 384
    if not tiny:
        if not hybrid:
            raise ValueError("save_random_dpt(tiny=False) builds the hybrid model only")
        config = DPTConfig(
            is_hybrid=True,
            neck_hidden_sizes=[256, 512, 768, 768],
            reassemble_factors=[1, 1, 1, 0.5],
            backbone_featmap_shape=[1, 1024, 24, 24],
            use_auxiliary_head=False,
        )
    else:
        tiny_vit = {
            "hidden_size": 32,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "intermediate_size": 37,
            "image_size": size,
            "patch_size": 16,
            "backbone_out_indices": [0, 1, 2, 3],
            "fusion_hidden_size": 16,
            "use_auxiliary_head": False,
            # 5x the default spread, so the random depth visibly depends on the image
            "initializer_range": 0.1,
        }
        if hybrid:
            # BiT stem: stage1 at 1/4 (16 ch), stage2 at 1/8 (32 ch), stage3 at 1/16 (64 ch)
            # feeds the ViT; the first two neck inputs are the BiT stages themselves.
            backbone = BitConfig(
                embedding_size=8,
                hidden_sizes=[16, 32, 64],
                depths=[1, 1, 1],
                num_groups=4,
                layer_type="bottleneck",
                global_padding="same",
                embedding_dynamic_padding=True,
                out_features=["stage1", "stage2", "stage3"],
            )
            config = DPTConfig(
                is_hybrid=True,
                backbone_config=backbone,
                backbone_featmap_shape=[1, 64, size // 16, size // 16],
                neck_hidden_sizes=[16, 32, 32, 32],
                reassemble_factors=[1, 1, 1, 0.5],
                **tiny_vit,
            )
        else:
            config = DPTConfig(
                is_hybrid=False,
                neck_hidden_sizes=[16, 16, 32, 32],
                reassemble_factors=[4, 2, 1, 0.5],
                **tiny_vit,
            )
    path = Path(path)
    model = DPTForDepthEstimation(config).eval()
    _lift_head_bias(model.head)
    model.save_pretrained(path)
    _processor_class()(
        size={"height": size, "width": size},
        keep_aspect_ratio=True,
        ensure_multiple_of=32,
        resample=3,  # PIL bicubic, as MiDaS
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    ).save_pretrained(path)
    return path


def save_random_depth_anything(path: str | Path, tiny: bool = True, seed: int = 0) -> Path:
    """``DepthAnythingForDepthEstimation`` (DINOv2 backbone) + its image processor in ``path``.

    ``tiny=False`` is the depth-anything/Depth-Anything-V2-Small-hf architecture (518 input).
    """
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    torch.manual_seed(seed)
    if tiny:
        backbone = Dinov2Config(
            hidden_size=32,
            num_hidden_layers=4,
            num_attention_heads=4,
            mlp_ratio=2,
            image_size=28,
            patch_size=14,
            out_indices=[1, 2, 3, 4],
            reshape_hidden_states=False,
            initializer_range=0.1,
        )
        config = DepthAnythingConfig(
            backbone_config=backbone,
            patch_size=14,
            reassemble_hidden_size=32,
            neck_hidden_sizes=[8, 16, 16, 32],
            fusion_hidden_size=16,
            head_hidden_size=8,
            initializer_range=0.1,
        )
        size = 28
    else:
        backbone = Dinov2Config(
            hidden_size=384,
            num_hidden_layers=12,
            num_attention_heads=6,
            image_size=518,
            patch_size=14,
            out_indices=[3, 6, 9, 12],
            reshape_hidden_states=False,
        )
        config = DepthAnythingConfig(
            backbone_config=backbone,
            reassemble_hidden_size=384,
            neck_hidden_sizes=[48, 96, 192, 384],
            fusion_hidden_size=64,
        )
        size = 518
    path = Path(path)
    model = DepthAnythingForDepthEstimation(config).eval()
    _lift_head_bias(model.head)
    model.save_pretrained(path)
    _processor_class()(
        size={"height": size, "width": size},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=3,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(path)
    return path


def _lift_head_bias(head: torch.nn.Module) -> None:
    # With initializer_range 0.02 the final ReLU leaves random depth heads at ~1e-8 or 0; a unit
    # bias on the last convolution gives positive, image-dependent outputs that tests can check.
    last = [m for m in head.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.bias.fill_(1.0)


def _processor_class():
    from dvg.backends.depth import dpt_processor_class

    return dpt_processor_class()


def _tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        sample_size=64,
    )


def _tiny_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=512,  # ids of the tiny tokenizer's start/end tokens
            eos_token_id=513,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-5,
            num_attention_heads=4,
            num_hidden_layers=5,
            pad_token_id=513,
            vocab_size=1000,
        )
    ).eval()


def _tiny_unet(in_channels: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )


def _sd_scheduler_config() -> dict:
    # The SD-2 noise schedule (scheduler_config.json of the SD-2 inpainting repository).
    return {
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "set_alpha_to_one": False,
        "steps_offset": 1,
    }


def save_random_sd_inpaint(path: str | Path, tiny: bool = True, seed: int = 0) -> Path:
    """A ``StableDiffusionInpaintPipeline`` (9-channel UNet) saved with ``save_pretrained``.

    ``tiny=True``: diffusers' own test components (UNet 32/64 channels, 2-block VAE, 5-layer
    CLIP text encoder) with a DDIM scheduler. ``tiny=False``: the stable-diffusion-2-inpainting
    architecture (865 M UNet, OpenCLIP-H text encoder) with a PNDM scheduler, for GPU
    benchmarks only. Both use the locally generated byte-level tokenizer.
    """
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        PNDMScheduler,
        StableDiffusionInpaintPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    path = Path(path)
    torch.manual_seed(seed)
    if tiny:
        unet, vae, text_encoder = _tiny_unet(9), _tiny_vae(), _tiny_text_encoder()
        scheduler = DDIMScheduler(clip_sample=False, **_sd_scheduler_config())
    else:
        unet = UNet2DConditionModel(
            sample_size=64,
            in_channels=9,
            out_channels=4,
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            down_block_types=(
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "DownBlock2D",
            ),
            up_block_types=(
                "UpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
            ),
            cross_attention_dim=1024,
            attention_head_dim=(5, 10, 20, 20),
            use_linear_projection=True,
        )
        vae = AutoencoderKL(
            block_out_channels=[128, 256, 512, 512],
            down_block_types=["DownEncoderBlock2D"] * 4,
            up_block_types=["UpDecoderBlock2D"] * 4,
            latent_channels=4,
            layers_per_block=2,
            sample_size=512,
        )
        text_encoder = CLIPTextModel(CLIPTextConfig(**_SD2_TEXT)).eval()
        scheduler = PNDMScheduler(skip_prk_steps=True, **_sd_scheduler_config())
    pipe = StableDiffusionInpaintPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=_tiny_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(path)
    return path


def save_random_marigold(path: str | Path, tiny: bool = True, seed: int = 0) -> Path:
    """A ``MarigoldDepthPipeline`` (8-channel UNet: image latent + depth latent).

    ``tiny=True`` only: the real prs-eth/marigold-depth-v1-1 is an SD-2 sized UNet; for GPU
    benchmarks of that size use ``save_random_sd_inpaint(tiny=False)`` (same UNet cost).
    """
    if not tiny:
        raise ValueError("save_random_marigold supports tiny=True only")
    from diffusers import DDIMScheduler, MarigoldDepthPipeline

    path = Path(path)
    torch.manual_seed(seed)
    scheduler = DDIMScheduler(
        clip_sample=False,
        timestep_spacing="trailing",
        prediction_type="v_prediction",
        **_sd_scheduler_config(),
    )
    pipe = MarigoldDepthPipeline(
        unet=_tiny_unet(8),
        vae=_tiny_vae(),
        scheduler=scheduler,
        text_encoder=_tiny_text_encoder(),
        tokenizer=_tiny_tokenizer(),
        prediction_type="depth",
        scale_invariant=True,
        shift_invariant=True,
        default_denoising_steps=1,
        default_processing_resolution=64,
    )
    pipe.save_pretrained(path)
    return path


def save_random_raft(
    path: str | Path, variant: Literal["large", "small"] = "large", seed: int = 0
) -> Path:
    """A RAFT ``.pth`` state dict with the official key names and the ``module.`` prefix.

    BatchNorm running statistics are randomised too, so a strict load that skipped them would
    be caught by comparing outputs.
    """
    from dvg.models.raft import RAFT, RAFTConfig

    torch.manual_seed(seed)
    model = RAFT(RAFTConfig(variant=variant))
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("running_var"):
            value = torch.rand_like(value) + 0.5
        elif key.endswith("running_mean"):
            value = torch.randn_like(value) * 0.1
        state["module." + key] = value
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path
