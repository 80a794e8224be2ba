"""`evaluation run`: build the benchmark's pairs, score every method, write the report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dvg.backends import DEPTH_BACKENDS, BackendSpec
from dvg.progress import Progress
from evaluation.benchmarks import (
    BENCHMARKS,
    RealEstate10KConfig,
    SyntheticConfig,
    realestate10k_pairs,
    score,
    summarise,
    synthetic_pairs,
)
from evaluation.methods import ORACLES, VAE_ORACLE_NOTE, Method, method_specs
from evaluation.report import write_report


@dataclass(frozen=True)
class EvaluationConfig:
    benchmark: str
    out: str
    methods: tuple[str, ...] = ("oracle", "warp-telea")
    data: str | None = None
    """RealEstate10K folder (cameras/ and frames/)."""
    pairs: str | None = None
    """Folder of the user's stereo clips (``stereo`` benchmark)."""
    every: int = 10
    """``stereo``: score every n-th frame of each clip."""
    model: str | None = None
    """Exported SpatialDreamer directory for the ``spatialdreamer`` method."""
    models: tuple[tuple[str, str], ...] = ()
    """``(label, directory)`` of further exported models, each a method of its own named by its
    label (``--model LABEL=DIR``): several models side by side in one report."""
    depth_model: str | None = None
    """Depth backend for non-oracle methods: ``ground-truth`` (synthetic default: true depth of
    unknown scale), any dvg depth backend (``dpt``, the realestate10k and stereo default;
    ``depth-anything``, ``marigold``, ``sidecar``) or a ``dpt`` model path / hub id."""
    lpips_trunk: str = "alex"
    lpips_trunk_weights: str | None = None
    lpips_linear_weights: str | None = None
    max_pairs: int | None = None
    size: tuple[int, int] | None = None
    examples: int = 4
    extra: dict = field(default_factory=dict)


def _depth_spec(config: EvaluationConfig) -> BackendSpec | None:
    name = config.depth_model or ("ground-truth" if config.benchmark == "synthetic" else "dpt")
    if name == "ground-truth":
        return None
    if name in DEPTH_BACKENDS:
        return BackendSpec(name)
    return BackendSpec("dpt", model=name)


def lpips_metric(config: EvaluationConfig, notes: list[str]):
    """The LPIPS metric from the configured weight files, or None (and a note saying why)."""
    if not (config.lpips_trunk_weights and config.lpips_linear_weights):
        notes.append(
            "LPIPS not computed: pass --lpips-trunk-weights and --lpips-linear-weights "
            "(docs/metrics.md lists the files)"
        )
        return None
    from evaluation.metrics import LPIPS

    return LPIPS.from_files(
        trunk=config.lpips_trunk,
        trunk_weights=config.lpips_trunk_weights,
        linear_weights=config.lpips_linear_weights,
    )


def run(config: EvaluationConfig) -> dict[str, Path]:
    """Score ``config.methods`` on ``config.benchmark`` and write the report to ``config.out``."""
    if config.benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {config.benchmark!r}; known: {', '.join(BENCHMARKS)}")
    if config.benchmark == "micro":
        from evaluation.benchmarks.micro import run_micro

        return run_micro(config)
    if config.benchmark == "video":
        if config.models:
            raise ValueError("video: labelled models (--model LABEL=DIR) are not supported yet")
        from evaluation.benchmarks.video import run_video

        return run_video(config)
    if config.benchmark == "realestate10k" and config.data is None:
        raise ValueError(
            "realestate10k needs --data DIR (cameras/ and frames/, docs/evaluation.md)"
        )
    if config.benchmark == "stereo" and config.pairs is None:
        raise ValueError("stereo needs --pairs DIR (your stereo clips, docs/evaluation.md)")
    notes: list[str] = []
    depth = _depth_spec(config)
    specs = method_specs(config.methods, depth=depth, model=config.model, models=config.models)
    methods = [Method(spec) for spec in specs]
    lpips = lpips_metric(config, notes)
    for name in ORACLES:
        if config.benchmark in ("realestate10k", "stereo") and name in config.methods:
            notes.append(f"{name}: {config.benchmark} has no ground-truth depth, so it has no rows")
    pairs = _pairs(config, notes)[: config.max_pairs]
    if not pairs:
        raise ValueError(f"{config.benchmark}: no pair to evaluate")
    samples = []
    progress = Progress("evaluation run", len(methods) * len(pairs), unit="pairs")
    for method in methods:
        samples += list(
            score(method, pairs, lpips=lpips, keep_images=config.examples, progress=progress)
        )
    progress.close()
    if config.benchmark == "synthetic":
        notes.append(
            "Depth scale: least-squares alignment of inverse depth to the ground truth, identical "
            "for every method (evaluation/protocol.py)."
        )
    else:
        notes.append(
            "Depth scale: a photometric scale fit of each method's inverse depth to the target "
            "view, identical for every method (evaluation/protocol.py); it uses the target, so "
            "the figures are an upper bound of what a method does unaided."
        )
    if any(m.is_oracle for m in methods):
        notes.append(
            "oracle: exact depth and the real target's pixels in the holes; only the warp's "
            "resampling error is left, so it is the ceiling of every hole filler."
        )
    if any(m.is_vae_oracle for m in methods):
        notes.append(VAE_ORACLE_NOTE)
    return write_report(
        Path(config.out), config.benchmark, asdict(config), summarise(samples), samples,
        notes=notes,
    )  # fmt: skip


def _pairs(config: EvaluationConfig, notes: list[str]) -> list:
    """The benchmark's view pairs (all of them are decoded before scoring starts)."""
    if config.benchmark == "realestate10k":
        return list(realestate10k_pairs(RealEstate10KConfig(data=config.data, size=config.size)))
    if config.benchmark == "stereo":
        from evaluation.benchmarks.stereo import StereoConfig, find_clips, stereo_pairs

        clips, ignored = find_clips(config.pairs)
        if not clips:
            raise ValueError(
                f"--pairs {config.pairs}: no stereo clip found (NAME_L + NAME_R files, or one "
                "NAME_SBS / NAME_TB file; docs/evaluation.md)"
            )
        if ignored:
            notes.append(f"not part of a stereo clip, skipped: {', '.join(ignored)}")
        notes.append(
            f"Clips: {', '.join(f'{c.name} ({c.layout})' for c in clips)}; every "
            f"{config.every}th frame scored."
        )
        stereo = StereoConfig(pairs=config.pairs, every=config.every)
        return list(stereo_pairs(stereo, clips))
    return list(synthetic_pairs(SyntheticConfig(**config.extra)))


def parse_methods(text: Sequence[str]) -> tuple[str, ...]:
    names: list[str] = []
    for item in text:
        names += [n.strip() for n in item.split(",") if n.strip()]
    return tuple(names)
