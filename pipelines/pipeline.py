"""SpatialDreamerPipeline: a mono (left) video plus its forward-rendered right view -> right view.

Paper Fig. 2: "the left and right views are the target and reference view respectively for
training, and the opposite for inference". At inference the target is the RIGHT view: the warped
right view with its holes zeroed (x1~) and the hole mask M condition the denoising U-Net; the
LEFT view is the reference (RefinerNet latents and CLIP image embedding; TIL over neighbouring
reference frames happens inside the model). The training data match this geometry: DVG renders
its novel view (the training reference) to the LEFT of the real frame (the training target), so
in both the target sits to the right of its reference and its holes lie right of their occluders
(docs/model.md, "Handedness"; `conditioning` is the counterpart of the trainer's batches).

Sampling is SVD's EDM Euler sampler; long videos run in overlapping windows of the trained clip
length, joined in latent space (periodic noise and step-wise blending of the hand-over frames,
see `stream_right_views`). See docs/inference.md.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline, EulerDiscreteScheduler
from diffusers.utils import BaseOutput
from torch import nn

from pipelines.model import SpatialDreamerModel
from pipelines.model.tiny import SVD_SCHEDULER_CONFIG
from pipelines.tiling import tiled
from pipelines.windows import check_window, crossfade_weights, iter_windows

# Window length for a model without TIL: the paper's stage-2 clip length (8 frames).
DEFAULT_WINDOW = 8
# SVD micro-conditioning as the trainer uses it (trainer.config.LossConfig: fps 7, motion bucket
# 127); noise_aug_strength is the median exp(-3.0) of its conditioning-noise distribution.
DEFAULT_FPS = 7
DEFAULT_MOTION_BUCKET_ID = 127
DEFAULT_NOISE_AUG_STRENGTH = 0.05
# Latent frames decoded on each side of a VAE decode chunk and then dropped: the temporal decoder
# sees its neighbours, so separately decoded chunks meet without a jump.
DEFAULT_DECODE_CONTEXT = 4
# Pixels around each hole that are regenerated too (hole borders of a forward splat are smeared).
DEFAULT_KNOWN_MARGIN = 2


@dataclass
class SpatialDreamerPipelineOutput(BaseOutput):
    """frames: (F, H, W, 3) uint8 right views."""

    frames: np.ndarray


@dataclass
class _Frame:
    """One input frame, padded, with its sampling noise (drawn in stream order from the seed)."""

    left: torch.Tensor  # (3, Hp, Wp) uint8
    warped: torch.Tensor  # (3, Hp, Wp) uint8
    holes: torch.Tensor  # (1, Hp, Wp) bool
    noise: torch.Tensor  # (4, hp, wp) float32, the initial latent noise (unit variance)
    aug: torch.Tensor  # (3, Hp, Wp) float32, the conditioning noise augmentation (unit variance)
    height: int  # size before padding
    width: int


@dataclass
class _Sampled:
    """One frame after sampling: what later windows and the decoder need of it."""

    frame: _Frame
    latent: torch.Tensor  # (4, hp, wp) float32 final latent
    trajectory: torch.Tensor  # (steps, 4, hp, wp) float32 denoised estimate at each step


@dataclass(frozen=True)
class _Settings:
    """Per-call sampling settings shared by every window."""

    deviation: float
    steps: int
    guidance: float
    decode_chunk_size: int
    decode_context: int
    keep_known: bool
    known_margin: int
    added_time_ids: tuple[float, float, float]  # [fps - 1, motion_bucket_id, noise_aug_strength]
    sigmas: torch.Tensor  # (steps + 1,) float32, the scheduler's Karras sigmas ending in 0
    tile: int | None  # latent cells per U-Net tile side (None: whole frames)
    tile_overlap: int  # latent cells shared by neighbouring tiles


def conditioning(
    left: torch.Tensor,
    warped: torch.Tensor,
    holes: torch.Tensor,
    aug: torch.Tensor | None = None,
    noise_aug_strength: float = 0.0,
) -> dict[str, torch.Tensor]:
    """The pixel-space conditions of the model for N frames, before any encoder: the inference
    counterpart of the trainer's batch fields ``reference``, ``masked_target`` and ``mask``.

    left, warped: (N, 3, H, W) uint8; holes: (N, 1, H, W) bool; aug: (N, 3, H, W) unit noise.
    Returns ``reference`` (N, 3, H, W) left view in [-1, 1]; ``masked`` (N, 3, H, W) the warped
    right view with its holes at 0.0 (mid-grey, as x~1 is blanked in M in training), plus SVD's
    conditioning noise augmentation ``noise_aug_strength * aug``; ``mask`` (N, 1, H, W) float
    {0, 1}, 1 = hole.
    """
    mask = holes.float()
    masked = _to_unit(warped) * (1.0 - mask)
    if aug is not None and noise_aug_strength:
        masked = masked + noise_aug_strength * aug
    return {"reference": _to_unit(left), "masked": masked, "mask": mask}


def hole_alpha(holes: torch.Tensor, margin: int) -> torch.Tensor:
    """holes: (N, 1, H, W) bool -> (N, 1, H, W) float weight of the generated view.

    1 on holes; the holes dilated by `margin` pixels and box-feathered over 2 * margin + 1 pixels
    around them; exactly 0 further than 2 * margin pixels from any hole.
    """
    alpha = holes.float()
    if margin <= 0:
        return alpha
    size = 2 * margin + 1
    dilated = F.max_pool2d(alpha, size, stride=1, padding=margin)
    feathered = F.avg_pool2d(dilated, size, stride=1, padding=margin, count_include_pad=False)
    return torch.maximum(feathered, alpha)


class SpatialDreamerPipeline(DiffusionPipeline):
    """Right-view generation with a trained SpatialDreamer model (paper Fig. 2, inference roles).

    Components: `model` (SpatialDreamerModel: U-Net, RefinerNet, TIL, deviation embedding, VAE,
    CLIP encoder, kept as one module so its attention processors and time-embedding hook stay
    wired) and `scheduler` (EulerDiscreteScheduler, SVD's EDM/Karras configuration).
    """

    model_cpu_offload_seq = "model"
    # The pixel-space conditions of each window (an attribute, so a test can watch them).
    conditioning = staticmethod(conditioning)

    def __init__(self, model: SpatialDreamerModel, scheduler: EulerDiscreteScheduler) -> None:
        super().__init__()
        self.register_modules(model=model.eval(), scheduler=scheduler)
        self._offload_device: torch.device | None = None

    # ------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(
        cls, model_dir: str | Path, *, torch_dtype: torch.dtype | None = None
    ) -> SpatialDreamerPipeline:
        """Load a directory written by `trainer export` (SpatialDreamerModel.save_pretrained).

        The scheduler is the directory's `scheduler/` when present, else SVD's default config.
        """
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(
                f"{model_dir}: model directory not found; write one with `trainer export RUN "
                "--out DIR`"
            )
        model = SpatialDreamerModel.from_pretrained(model_dir, torch_dtype=torch_dtype).eval()
        scheduler = model.scheduler or EulerDiscreteScheduler.from_config(SVD_SCHEDULER_CONFIG)
        return cls(model, scheduler)

    def save_pretrained(self, save_directory: str | Path, **_: object) -> None:
        """Write the model directory format (the one `from_pretrained` and `trainer export` use),
        with the scheduler and the `model_index.json` that `DiffusionPipeline.from_pretrained`
        reads (pipelines/hub.py)."""
        from pipelines.hub import write_model_index

        self.model.scheduler = self.scheduler
        self.model.save_pretrained(save_directory)
        write_model_index(save_directory)

    # ------------------------------------------------------------------- memory controls
    def enable_model_cpu_offload(
        self, gpu_id: int | None = None, device: torch.device | str = "cuda"
    ) -> None:
        """Keep sub-models on the CPU and move each to `device` only while it runs.

        Stages: encode (VAE encoder + CLIP), denoise (U-Net, RefinerNet, TIL, deviation MLP),
        decode (VAE). A CPU `device` makes this a no-op. Replaces diffusers' accelerate-hook
        version, which would move the whole model at once.
        """
        device = torch.device(device)
        if device.type == "cpu":
            self._offload_device = None
            return
        if gpu_id is not None:
            device = torch.device(device.type, gpu_id)
        self.model.to("cpu")
        self._offload_device = device

    def to(self, *args, **kwargs) -> SpatialDreamerPipeline:
        """Move and/or cast the model as nn.Module.to does (device, dtype); ends CPU offload.

        diffusers' version reads `.dtype` of every component, which a plain nn.Module lacks.
        """
        self._offload_device = None
        self.model.to(*args, **kwargs)
        return self

    @property
    def device(self) -> torch.device:
        """Where the denoising U-Net is (SpatialDreamerModel is a plain nn.Module, no .device)."""
        return next(self.model.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.unet.parameters()).dtype

    @property
    def _execution_device(self) -> torch.device:
        if self._offload_device is not None:
            return self._offload_device
        return self.device

    def _stage_modules(self, stage: str) -> list[nn.Module]:
        m = self.model
        if stage == "encode":
            return [m.vae, m.image_encoder]
        if stage == "decode":
            return [m.vae]
        return [m.unet, m.refiner, m.deviation_embedding] + ([m.til] if m.til is not None else [])

    @contextlib.contextmanager
    def _on_device(self, stage: str) -> Iterator[None]:
        """Run `stage` with its modules on the execution device (offload: only them)."""
        if self._offload_device is None:
            yield
            return
        modules = self._stage_modules(stage)
        for module in modules:
            module.to(self._offload_device)
        try:
            yield
        finally:
            for module in modules:
                module.to("cpu")

    # -------------------------------------------------------------------------- public
    @torch.no_grad()
    def __call__(
        self,
        left: np.ndarray,
        warped: np.ndarray,
        holes: np.ndarray,
        deviation: float | None = None,
        steps: int = 25,
        guidance: float = 1.0,
        seed: int = 0,
        window: int | None = None,
        overlap: int | None = None,
        decode_chunk_size: int = 8,
        decode_context: int = DEFAULT_DECODE_CONTEXT,
        keep_known: bool = True,
        known_margin: int = DEFAULT_KNOWN_MARGIN,
        fps: int = DEFAULT_FPS,
        motion_bucket_id: int = DEFAULT_MOTION_BUCKET_ID,
        noise_aug_strength: float = DEFAULT_NOISE_AUG_STRENGTH,
        periodic_noise: bool = True,
        tile_size: int | None = None,
        tile_overlap: int | None = None,
    ) -> SpatialDreamerPipelineOutput:
        """Generate the right views of one chunk of frames.

        left: (F, H, W, 3) uint8 mono (left) frames; warped: (F, H, W, 3) uint8 the left view
        forward-rendered to the right eye (holes unfilled); holes: (F, H, W) bool, True =
        disoccluded. deviation: stereo deviation strength s (paper Eq. 4, the 3D-strength
        control), None -> model.config.default_deviation. guidance > 1: classifier-free guidance
        against the unconditional model (zero CLIP embedding, zero masked view and mask).
        window/overlap: temporal windows (None -> the trained clip length, window // 4).
        keep_known: keep the warped pixels outside the holes (feathered over `known_margin`).
        periodic_noise: frame f reuses the noise of frame f mod window (see stream_right_views);
        False draws independent noise for every frame.
        tile_size / tile_overlap: run the U-Net on square tiles of tile_size pixels (a multiple
        of 64 for SVD) overlapping by tile_overlap pixels (None: a quarter tile), blended at
        every step (pipelines.tiling); None: whole frames.
        Returns frames: (F, H, W, 3) uint8 right views. Any H, W (padded internally).
        """
        _check_chunk(left, warped, holes)
        frames = self.stream_right_views(
            iter(left),
            iter(warped),
            iter(holes),
            deviation=deviation,
            steps=steps,
            guidance=guidance,
            seed=seed,
            window=window,
            overlap=overlap,
            decode_chunk_size=decode_chunk_size,
            decode_context=decode_context,
            keep_known=keep_known,
            known_margin=known_margin,
            fps=fps,
            motion_bucket_id=motion_bucket_id,
            noise_aug_strength=noise_aug_strength,
            periodic_noise=periodic_noise,
            tile_size=tile_size,
            tile_overlap=tile_overlap,
        )
        return SpatialDreamerPipelineOutput(frames=np.stack(list(frames)))

    def right_views(self, left: np.ndarray, warped: np.ndarray, holes: np.ndarray, **kwargs):
        """Alias of __call__ returning only the frames: (F, H, W, 3) uint8."""
        return self(left, warped, holes, **kwargs).frames

    @torch.no_grad()
    def stream_right_views(
        self,
        frames_iter: Iterable[np.ndarray],
        warped_iter: Iterable[np.ndarray],
        holes_iter: Iterable[np.ndarray],
        *,
        deviation: float | None = None,
        steps: int = 25,
        guidance: float = 1.0,
        seed: int = 0,
        window: int | None = None,
        overlap: int | None = None,
        decode_chunk_size: int = 8,
        decode_context: int = DEFAULT_DECODE_CONTEXT,
        keep_known: bool = True,
        known_margin: int = DEFAULT_KNOWN_MARGIN,
        fps: int = DEFAULT_FPS,
        motion_bucket_id: int = DEFAULT_MOTION_BUCKET_ID,
        noise_aug_strength: float = DEFAULT_NOISE_AUG_STRENGTH,
        periodic_noise: bool = True,
        tile_size: int | None = None,
        tile_overlap: int | None = None,
    ) -> Iterator[np.ndarray]:
        """Yield right views (H, W, 3) uint8 one by one from per-frame iterators.

        frames_iter / warped_iter: (H, W, 3) uint8 per frame; holes_iter: (H, W) bool. Output is
        identical to __call__ on the concatenated frames with the same arguments.

        Long videos (pipelines.windows, fixed-length windows so the model always sees its
        trained clip length): consecutive windows are joined three ways, none of which needs
        more than a window of frames in memory.
        - Periodic noise (FreeNoise's noise rescheduling, Qiu et al. 2024): frame f starts from
          the noise of frame f mod window, so every window holds i.i.d. noise (what the model
          was trained on) and all windows hold the same noise; a temporally coherent model
          then lands every window on the same content instead of each on its own.
        - Step-wise hand-over (MultiDiffusion's per-step averaging, restricted to what a
          stream has): at every step the denoised estimate of a frame the previous window held
          back is cross-faded with that window's estimate at the same step; frames earlier
          windows already emitted (a moved-back last window) follow their recorded estimates
          exactly.
        - Decode context: each VAE decode chunk is decoded with neighbouring latents.
        Holds at most window + 2 * decode_context frames (inputs, latents and per-step
        estimates), whatever the video length.
        """
        window, overlap = self.resolve_window(window, overlap)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if decode_chunk_size < 1:
            raise ValueError(f"decode_chunk_size must be >= 1, got {decode_chunk_size}")
        if decode_context < 0:
            raise ValueError(f"decode_context must be >= 0, got {decode_context}")
        if deviation is None:
            deviation = self.model.config.default_deviation
        generator = torch.Generator().manual_seed(seed)
        period = window if periodic_noise else None
        stream = self._frames(frames_iter, warped_iter, holes_iter, generator, period)
        settings = _Settings(
            deviation=float(deviation),
            steps=steps,
            guidance=float(guidance),
            decode_chunk_size=decode_chunk_size,
            decode_context=decode_context,
            keep_known=keep_known,
            known_margin=known_margin,
            added_time_ids=(float(fps - 1), float(motion_bucket_id), float(noise_aug_strength)),
            sigmas=self._sigmas(steps),
            **self._tiles(tile_size, tile_overlap),
        )
        # Sampled frames [first, first + len(sampled)): the latest window, the final frames
        # still waiting for their right decode context, and the left decode context.
        sampled: deque[_Sampled] = deque(maxlen=window + 2 * decode_context)
        first = 0
        final = 0  # frames [0, final) are final (held-back frames after them are not)
        emitted = 0  # frames [0, emitted) are out
        for win in iter_windows(stream, window, overlap, fixed_length=True):
            span = win.span
            # Anchors: the seen frames. Final ones -> follow exactly (weight 1); held back by
            # the previous window -> linear hand-over.
            held = span.new_start - max(span.start, final)
            weights = torch.cat([torch.ones(span.seen - held), crossfade_weights(held)])
            anchors = [sampled[k - first] for k in range(span.start, span.new_start)]
            latents, trajectory = self._sample_window(win.items, anchors, weights, settings)
            for k in range(max(span.start, final), span.stop):
                record = _Sampled(win.items[k - span.start], latents[k - span.start],
                                  trajectory[:, k - span.start])  # fmt: skip
                if k < first + len(sampled):
                    sampled[k - first] = record
                else:
                    if len(sampled) == sampled.maxlen:
                        first += 1
                    sampled.append(record)
            # Final frames go out once decode_context frames after them are sampled.
            final = span.keep_from(overlap)
            ready = min(final, span.stop - decode_context)
            if ready > emitted:
                yield from self._emit(sampled, first, emitted, ready, settings)
                emitted = ready
        yield from self._emit(sampled, first, emitted, first + len(sampled), settings)

    @torch.no_grad()
    def vae_round_trip(
        self,
        right: np.ndarray,
        warped: np.ndarray,
        holes: np.ndarray,
        *,
        decode_chunk_size: int = 8,
        decode_context: int = DEFAULT_DECODE_CONTEXT,
        keep_known: bool = True,
        known_margin: int = DEFAULT_KNOWN_MARGIN,
    ) -> np.ndarray:
        """The exact right views through the model's frozen VAE, as a sampled output goes:
        encoded (posterior mode), decoded in the same chunks with the same context and
        composited on the warped view the same way. A model whose latents were exact would
        output this, so it is the ceiling the VAE puts on every model (the micro benchmark's
        ``vae-oracle``; a stage-0 VAE stands in for SVD's there).

        right, warped: (F, H, W, 3) uint8; holes: (F, H, W) bool -> (F, H, W, 3) uint8. Holds
        the whole clip (an evaluation tool, not a converter).
        """
        _check_chunk(right, warped, holes)
        if decode_chunk_size < 1 or decode_context < 0:
            raise ValueError(
                f"decode_chunk_size must be >= 1 and decode_context >= 0, got "
                f"{decode_chunk_size}, {decode_context}"
            )
        generator = torch.Generator().manual_seed(0)  # _Frame's noise: drawn, never used here
        frames = list(self._frames(iter(right), iter(warped), iter(holes), generator, None))
        with self._on_device("encode"):
            images = _to_unit(torch.stack([f.left for f in frames]).to(self._execution_device))
            latents = self.model.encode_images(images).float().cpu()
        pairs = zip(frames, latents, strict=True)
        sampled = deque(_Sampled(f, z, torch.empty(0)) for f, z in pairs)
        settings = _Settings(
            deviation=0.0, steps=0, guidance=1.0, decode_chunk_size=decode_chunk_size,
            decode_context=decode_context, keep_known=keep_known, known_margin=known_margin,
            added_time_ids=(0.0, 0.0, 0.0), sigmas=torch.zeros(1), tile=None, tile_overlap=0,
        )  # fmt: skip
        return np.stack(list(self._emit(sampled, 0, 0, len(frames), settings)))

    # ------------------------------------------------------------------------ internals
    def resolve_window(self, window: int | None, overlap: int | None) -> tuple[int, int]:
        """(window, overlap) with None resolved: the trained clip length and a quarter of it."""
        if window is None:
            config = self.model.config
            window = config.til_frames if self.model.til is not None else DEFAULT_WINDOW
        if overlap is None:
            overlap = max(1, window // 4) if window > 1 else 0
        check_window(window, overlap)
        return window, overlap

    def _sigmas(self, steps: int) -> torch.Tensor:
        """The scheduler's noise levels for `steps` Euler steps: (steps + 1,), last one 0.

        Only the schedule is taken from the scheduler; the Euler update is written out in
        _sample_window because the window cross-fade acts on the denoised estimate between the
        model and the step, which scheduler.step does not expose.
        """
        self.scheduler.set_timesteps(steps)
        sigmas = torch.as_tensor(self.scheduler.sigmas, dtype=torch.float32).cpu()
        if sigmas.shape != (steps + 1,) or sigmas[-1] != 0:
            raise ValueError(
                f"scheduler {type(self.scheduler).__name__} gave sigmas {tuple(sigmas.shape)} "
                "not ending in 0; SpatialDreamerPipeline needs an EDM-style Euler scheduler"
            )
        return sigmas

    def _tiles(self, tile_size: int | None, tile_overlap: int | None) -> dict[str, int | None]:
        """Check the tile settings (pixels) and convert them to latent cells."""
        if tile_size is None:
            return {"tile": None, "tile_overlap": 0}
        multiple, vae = self._size_multiple(), self._vae_factor()
        if tile_size < multiple or tile_size % multiple:
            raise ValueError(
                f"tile_size must be a positive multiple of {multiple} pixels (the U-Net's "
                f"coarsest cell), got {tile_size}"
            )
        if tile_overlap is None:
            tile_overlap = tile_size // 4
        if tile_overlap % vae or not 0 <= tile_overlap < tile_size:
            raise ValueError(
                f"tile_overlap must be a multiple of {vae} pixels in [0, tile_size={tile_size}), "
                f"got {tile_overlap}"
            )
        return {"tile": tile_size // vae, "tile_overlap": tile_overlap // vae}

    def _vae_factor(self) -> int:
        """Pixels per latent cell (8 for SVD's VAE, 2 for the micro preset's)."""
        return self.model.vae_scale_factor

    def _size_multiple(self) -> int:
        """Pixels per coarsest U-Net cell: VAE factor x 2^(U-Net downsamplings)."""
        vae = self._vae_factor()
        unets = (self.model.unet.config, self.model.refiner.config)
        levels = max(len(config.block_out_channels) - 1 for config in unets)
        return vae * 2**levels

    def _frames(
        self,
        left_iter: Iterable[np.ndarray],
        warped_iter: Iterable[np.ndarray],
        holes_iter: Iterable[np.ndarray],
        generator: torch.Generator,
        period: int | None,
    ) -> Iterator[_Frame]:
        """Check, pad and attach noise to each frame.

        Noise is drawn in stream order; with a `period`, frame f reuses frame (f mod period)'s
        latent noise and conditioning augmentation (only `period` of each are kept).
        """
        multiple = self._size_multiple()
        vae_factor = self._vae_factor()
        size: tuple[int, int] | None = None
        drawn: list[tuple[torch.Tensor, torch.Tensor]] = []
        for index, (left, warped, holes) in enumerate(
            zip(left_iter, warped_iter, holes_iter, strict=True)
        ):
            _check_frame(left, warped, holes, index)
            if size is None:
                size = left.shape[:2]
            elif left.shape[:2] != size:
                raise ValueError(f"frame {index}: size {left.shape[:2]} differs from {size}")
            height, width = size
            pad_h = math.ceil(height / multiple) * multiple - height
            pad_w = math.ceil(width / multiple) * multiple - width
            pads = (0, pad_w, 0, pad_h)
            images = torch.from_numpy(np.stack([left, warped])).permute(0, 3, 1, 2)
            images = _pad(images, pads)
            hole = _pad(torch.from_numpy(holes)[None, None], pads)[0]
            hp, wp = images.shape[-2:]
            if period is None or index < period:
                noise = torch.randn(4, hp // vae_factor, wp // vae_factor, generator=generator)
                aug = torch.randn(3, hp, wp, generator=generator)
                if period is not None:
                    drawn.append((noise, aug))
            else:
                noise, aug = drawn[index % period]
            yield _Frame(images[0], images[1], hole, noise, aug, height, width)

    def _sample_window(
        self,
        items: list[_Frame],
        anchors: list[_Sampled],
        weights: torch.Tensor,
        settings: _Settings,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Euler-sample one window (SVD's EDM sampler).

        items: the window's frames; anchors: the sampled records of its first len(anchors)
        frames from earlier windows, weights: (len(anchors),) their share at every step: the
        denoised estimate of anchored frame j at step i is cross-faded
        D_ij <- w_j * A_ij + (1 - w_j) * D_ij with A_ij the earlier window's estimate at step i.
        Returns latents (n, 4, h, w) and the per-step denoised estimates (steps, n, 4, h, w),
        float32 on the CPU.
        """
        model = self.model
        device = self._execution_device
        pixels = self.conditioning(
            torch.stack([f.left for f in items]).to(device),
            torch.stack([f.warped for f in items]).to(device),
            torch.stack([f.holes for f in items]).to(device),
            torch.stack([f.aug for f in items]).to(device),
            noise_aug_strength=settings.added_time_ids[2],
        )
        noise = torch.stack([f.noise for f in items]).to(device)

        with self._on_device("encode"):
            reference = model.encode_images(pixels["reference"]).float()
            masked = model.encode_images(pixels["masked"]).float()
            # The first reference frame stands for the window, as in training.
            embedding = model.image_embeddings(pixels["reference"][:1]).float()
        vae_factor = pixels["reference"].shape[-1] // reference.shape[-1]
        mask = F.max_pool2d(pixels["mask"], kernel_size=vae_factor)

        cfg = settings.guidance > 1.0
        batch = 2 if cfg else 1
        dtype = model.unet.dtype
        masked_b = masked[None].repeat(batch, 1, 1, 1, 1)
        mask_b = mask[None].repeat(batch, 1, 1, 1, 1)
        embed_b = embedding.repeat(batch, 1, 1)  # (B, 1, D)
        if cfg:  # row 0 unconditional: the training dropout's zero embedding and zero x1~, M
            masked_b[0], mask_b[0], embed_b[0] = 0.0, 0.0, 0.0
        reference_b = reference[None].repeat(batch, 1, 1, 1, 1).to(dtype)
        time_ids = torch.tensor([settings.added_time_ids] * batch, device=device)
        deviation = torch.full((batch,), settings.deviation, device=device)

        shared = len(anchors)
        if weights.shape != (shared,):
            raise RuntimeError("window bookkeeping: anchor weights do not match the anchors")
        if shared:
            anchor_steps = torch.stack([a.trajectory for a in anchors], dim=1)  # (S, shared, ...)
            weights = weights.to(device).view(-1, 1, 1, 1)

        sigmas = settings.sigmas.to(device)
        z = noise * sigmas[0]
        trajectory = []
        with self._on_device("denoise"):
            # The RefinerNet + TIL tokens depend only on the reference: once per window, not once
            # per step (model.reference_bank). With tiles, each tile's bank would have to be
            # kept for the whole window, so tiles (a memory control) recompute it instead.
            bank = None
            if settings.tile is None:
                bank = model.reference_bank(reference_b, embed_b.to(dtype))
            for i in self.progress_bar(range(settings.steps)):
                sigma, sigma_next = sigmas[i], sigmas[i + 1]
                c_in = 1.0 / (sigma**2 + 1.0).sqrt()
                c_skip = 1.0 / (sigma**2 + 1.0)
                c_out = -sigma / (sigma**2 + 1.0).sqrt()
                z_b = z[None].repeat(batch, 1, 1, 1, 1)
                timestep = (0.25 * sigma.log()).repeat(batch)

                def unet(noisy, masked_view, hole_mask, ref, timestep=timestep):
                    return model(
                        noisy, timestep, masked_view, hole_mask, ref, embed_b.to(dtype),
                        time_ids, deviation=deviation, reference_bank=bank,
                    )  # fmt: skip

                spatial = [z_b * c_in, masked_b, mask_b, reference_b]
                spatial = [t.to(dtype) for t in spatial]
                if settings.tile is None:
                    output = unet(*spatial).float()
                else:
                    output = tiled(unet, spatial, settings.tile, settings.tile_overlap)
                denoised = output * c_out + z_b * c_skip
                if cfg:
                    denoised = denoised[0] + settings.guidance * (denoised[1] - denoised[0])
                else:
                    denoised = denoised[0]
                if shared:
                    anchor = anchor_steps[i].to(device)
                    head = weights * anchor + (1.0 - weights) * denoised[:shared]
                    denoised = torch.cat([head, denoised[shared:]])
                trajectory.append(denoised.cpu())
                # Euler step of the probability-flow ODE dz/dsigma = (z - D(z)) / sigma.
                z = z + (z - denoised) / sigma * (sigma_next - sigma)
        _release_reference_tokens(model)
        return z.cpu(), torch.stack(trajectory)

    def _emit(
        self,
        sampled: deque[_Sampled],
        first: int,
        begin: int,
        end: int,
        settings: _Settings,
    ) -> Iterator[np.ndarray]:
        """Decode frames [begin, end) (indices into the stream; `sampled` holds frames from
        `first` on), composite the known pixels, crop the padding, yield frames.

        Each chunk of decode_chunk_size frames is decoded together with up to decode_context
        neighbouring latents on each side (on the right: held-back latents, not final yet),
        which are then dropped.
        """
        model = self.model
        device = self._execution_device
        context = settings.decode_context
        available = first + len(sampled)
        for low_chunk in range(begin, end, settings.decode_chunk_size):
            high_chunk = min(end, low_chunk + settings.decode_chunk_size)
            low = max(first, low_chunk - context)
            high = min(available, high_chunk + context)
            latents = torch.stack([sampled[k - first].latent for k in range(low, high)])
            with self._on_device("decode"):
                decoded = model.decode_latents(latents.to(device), num_frames=high - low)
            decoded = decoded[low_chunk - low : high_chunk - low]
            images = ((decoded.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round()
            images = images.to(torch.uint8).cpu()
            chunk = [sampled[k - first].frame for k in range(low_chunk, high_chunk)]
            if settings.keep_known:
                warped = torch.stack([f.warped for f in chunk])
                holes = torch.stack([f.holes for f in chunk])
                alpha = hole_alpha(holes, settings.known_margin)
                blend = (alpha * images.float() + (1.0 - alpha) * warped.float()).round()
                images = torch.where(alpha > 0, blend.to(torch.uint8), warped)
            for frame, item in zip(images, chunk, strict=True):
                out = frame.permute(1, 2, 0)[: item.height, : item.width]
                yield np.ascontiguousarray(out.numpy())


def _release_reference_tokens(model: SpatialDreamerModel) -> None:
    """Drop the reference-attention banks the model keeps after a forward (device memory)."""
    for pair in model.pairs:
        pair.read.reference = None
        pair.write.tokens = None


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> float32 in [-1, 1]."""
    return images.float() / 127.5 - 1.0


def _pad(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    """Replicate-pad (N, C, H, W) on the right and bottom (any dtype)."""
    if not any(pads):
        return x
    return F.pad(x.float(), pads, mode="replicate").to(x.dtype)


def _check_frame(left: np.ndarray, warped: np.ndarray, holes: np.ndarray, index: int) -> None:
    where = f"SpatialDreamerPipeline frame {index}"
    for name, array in (("left", left), ("warped", warped)):
        if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
            raise ValueError(f"{where}: {name} must be a uint8 numpy array (H, W, 3)")
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"{where}: {name} must be (H, W, 3), got {array.shape}")
    if warped.shape != left.shape:
        raise ValueError(f"{where}: warped {warped.shape} differs from left {left.shape}")
    if not isinstance(holes, np.ndarray) or holes.dtype != np.bool_:
        raise ValueError(f"{where}: holes must be a bool numpy array (H, W)")
    if holes.shape != left.shape[:2]:
        raise ValueError(f"{where}: holes {holes.shape} must be (H, W) = {left.shape[:2]}")


def _check_chunk(left: np.ndarray, warped: np.ndarray, holes: np.ndarray) -> None:
    for name, array, ndim in (("left", left, 4), ("warped", warped, 4), ("holes", holes, 3)):
        if not isinstance(array, np.ndarray) or array.ndim != ndim:
            raise ValueError(
                f"SpatialDreamerPipeline: {name} must be a numpy array with {ndim} dims "
                "(left, warped: (F, H, W, 3) uint8; holes: (F, H, W) bool)"
            )
    if not len(left) == len(warped) == len(holes) or len(left) == 0:
        raise ValueError(
            f"SpatialDreamerPipeline: left, warped, holes need the same F >= 1 frames, got "
            f"{len(left)}, {len(warped)}, {len(holes)}"
        )
