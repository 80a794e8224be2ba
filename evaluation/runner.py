"""`evaluation run`: build the benchmark's pairs, score every method, write the report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dvg.backends import BackendSpec
from evaluation.benchmarks import (
    BENCHMARKS,
    RealEstate10KConfig,
    SyntheticConfig,
    realestate10k_pairs,
    score,
    summarise,
    synthetic_pairs,
)
from evaluation.methods import Method, method_spec
from evaluation.report import write_report


@dataclass(frozen=True)
class EvaluationConfig:
    benchmark: str
    out: str
    methods: tuple[str, ...] = ("oracle", "warp-telea")
    data: str | None = None
    """RealEstate10K folder (cameras/ and frames/)."""
    model: str | None = None
    """Exported SpatialDreamer directory for the ``spatialdreamer`` method."""
    depth_model: str | None = None
    """Depth backend for non-oracle methods: ``ground-truth`` (synthetic default: true depth of
    unknown scale), ``dpt`` (realestate10k default), ``depth-anything``, ``marigold`` or a
    ``dpt`` model path / hub id."""
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
    if name in ("dpt", "depth-anything", "marigold"):
        return BackendSpec(name)
    return BackendSpec("dpt", model=name)


def _lpips(config: EvaluationConfig, notes: list[str]):
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
    if config.benchmark == "video":
        from evaluation.benchmarks.video import run_video

        return run_video(config)
    if config.benchmark == "realestate10k" and config.data is None:
        raise ValueError(
            "realestate10k needs --data DIR (cameras/ and frames/, docs/evaluation.md)"
        )
    notes: list[str] = []
    depth = _depth_spec(config)
    methods = [
        Method(method_spec(name, depth=depth, model=config.model)) for name in config.methods
    ]
    lpips = _lpips(config, notes)
    if config.benchmark == "realestate10k":
        if "oracle" in config.methods:
            notes.append("oracle: RealEstate10K has no ground-truth depth, so it has no rows")
        pairs = list(realestate10k_pairs(RealEstate10KConfig(data=config.data, size=config.size)))
    else:
        pairs = list(synthetic_pairs(SyntheticConfig(**config.extra)))
    pairs = pairs[: config.max_pairs]
    if not pairs:
        raise ValueError(f"{config.benchmark}: no pair to evaluate")
    samples = []
    for method in methods:
        samples += list(score(method, pairs, lpips=lpips, keep_images=config.examples))
    notes.append(
        "Depth scale: least-squares alignment of inverse depth to ground truth (synthetic) or a "
        "photometric scale fit to the target (RealEstate10K), identical for every method "
        "(evaluation/protocol.py)."
    )
    return write_report(
        Path(config.out), config.benchmark, asdict(config), summarise(samples), samples,
        notes=notes,
    )  # fmt: skip


def parse_methods(text: Sequence[str]) -> tuple[str, ...]:
    names: list[str] = []
    for item in text:
        names += [n.strip() for n in item.split(",") if n.strip()]
    return tuple(names)
