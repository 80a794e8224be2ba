"""Reports people read: results.json, CSVs, a Markdown table laid out like the paper's Tables 1
and 2 (the paper's own rows beside ours), distribution and baseline plots, an example grid."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from evaluation.benchmarks.base import Sample

# Paper Table 1 (RealEstate10K, single view NVS) and Table 2 (video), SpatialDreamer rows.
PAPER_TABLE1 = {
    "t=5": {"ssim": 0.916, "psnr": 32.26, "lpips": 0.038},
    "t=10": {"ssim": 0.857, "psnr": 24.86, "lpips": 0.049},
}
PAPER_TABLE2 = {"fvd": 67.09, "ewarp": 3.374}

_ARROWS = {"ssim": "↑", "psnr": "↑", "lpips": "↓", "fvd": "↓", "ewarp": "↓", "ewarp_seams": "↓"}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def image_table(rows: Sequence[dict[str, Any]], *, paper: bool) -> str:
    """Methods as rows, (offset x metric) as columns, like the paper's Table 1."""
    offsets = sorted({r["offset"] for r in rows}, key=lambda o: (o != "stereo", o))
    metrics = [m for m in ("ssim", "psnr", "lpips") if any(m in r for r in rows)]
    header = ["Method"] + [f"{m.upper()}{_ARROWS[m]} {o}" for o in offsets for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    if paper:
        cells = ["SpatialDreamer (paper, Table 1)"]
        for offset in offsets:
            for metric in metrics:
                cells.append(_fmt(PAPER_TABLE1.get(offset, {}).get(metric), 3))
        lines.append("| " + " | ".join(cells) + " |")
    by_method: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_method.setdefault(row["method"], {})[row["offset"]] = row
    for method, per_offset in by_method.items():
        cells = [f"{method} (ours, n={sum(r['n'] for r in per_offset.values())})"]
        for offset in offsets:
            for metric in metrics:
                digits = 2 if metric == "psnr" else 3
                cells.append(_fmt(per_offset.get(offset, {}).get(metric), digits))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def video_table(rows: Sequence[dict[str, Any]]) -> str:
    """The paper's Table 2: FVD and E_warp (x 10^-3), plus E_warp across window seams alone."""
    header = ["Method", "FVD↓", "E_warp↓ (×10⁻³)", "E_warp at window seams↓ (×10⁻³)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.append(
        f"| SpatialDreamer (paper, Table 2) | {PAPER_TABLE2['fvd']:.2f} | "
        f"{PAPER_TABLE2['ewarp']:.3f} | – |"
    )
    for row in rows:
        lines.append(
            f"| {row['method']} (ours, n={row['n']}) | {_fmt(row.get('fvd'), 2)} | "
            f"{_fmt(row.get('ewarp'), 3)} | {_fmt(row.get('ewarp_seams'), 3)} |"
        )
    return "\n".join(lines)


def _plots(samples: Sequence[Sample], folder: Path) -> list[Path]:
    """Per-sample metric distributions and metric vs. camera baseline, one PNG per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    methods = sorted({s.method for s in samples})
    for metric in sorted({m for s in samples for m in s.metrics}):
        figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
        data = [[s.metrics[metric] for s in samples if s.method == m] for m in methods]
        data = [[v for v in values if math.isfinite(v)] for values in data]
        left.boxplot(data, tick_labels=methods)
        left.set_title(f"{metric}: per-sample distribution")
        for method in methods:
            points = [(s.baseline, s.metrics[metric]) for s in samples if s.method == method]
            points = [p for p in points if math.isfinite(p[1])]
            if points:
                x, y = zip(*points, strict=True)
                right.scatter(x, y, label=method, s=14)
        right.set_xlabel("camera baseline |t| of the pair")
        right.set_ylabel(metric)
        right.set_title(f"{metric} vs. baseline magnitude")
        right.legend()
        figure.tight_layout()
        path = folder / f"{metric}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = np.ascontiguousarray(tile[..., ::-1])  # RGB -> BGR for OpenCV
    cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
    return tile


def example_grid(samples: Sequence[Sample], path: Path, max_rows: int = 6) -> Path | None:
    """Rows of pairs: source | warped (holes black) | each method's output | target."""
    with_images = [s for s in samples if s.images]
    pairs = list(dict.fromkeys(s.pair_id for s in with_images))[:max_rows]
    if not pairs:
        return None
    methods = sorted({s.method for s in with_images})
    rows = []
    for pair in pairs:
        by_method = {s.method: s for s in with_images if s.pair_id == pair}
        first = next(iter(by_method.values()))
        tiles = [_label(first.images["source"], f"source {pair}"),
                 _label(first.images["warped"], "warped (holes black)")]  # fmt: skip
        for method in methods:
            sample = by_method.get(method)
            image = sample.images["output"] if sample else np.zeros_like(first.images["source"])
            tiles.append(_label(image, method))
        tiles.append(_label(first.images["target"], "target"))
        rows.append(np.concatenate(tiles, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    cv2.imwrite(str(path), np.concatenate(rows, axis=0))
    return path


def write_report(
    out_dir: Path,
    benchmark: str,
    config: dict[str, Any],
    rows: Sequence[dict[str, Any]],
    samples: Sequence[Sample],
    *,
    video_rows: Sequence[dict[str, Any]] = (),
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """Write every report file into ``out_dir``; returns their paths by kind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "csv": out_dir / "samples.csv",
             "summary_csv": out_dir / "summary.csv", "markdown": out_dir / "report.md"}  # fmt: skip
    results = {
        "benchmark": benchmark,
        "config": config,
        "summary": list(rows),
        "video": list(video_rows),
        "paper": {"table1": PAPER_TABLE1, "table2": PAPER_TABLE2},
        "samples": [
            {
                "pair": s.pair_id,
                "method": s.method,
                "offset": s.offset,
                "baseline": s.baseline,
                "hole_fraction": s.hole_fraction,
                "seconds": s.seconds,
                **s.metrics,
            }
            for s in samples
        ],
        "notes": list(notes),
    }
    paths["json"].write_text(json.dumps(results, indent=1, default=float))
    for path, records in ((paths["csv"], results["samples"]), (paths["summary_csv"], rows)):
        with open(path, "w", newline="") as handle:
            if records:
                fields = sorted({k for r in records for k in r})
                writer = csv.DictWriter(handle, fieldnames=fields)
                writer.writeheader()
                writer.writerows(records)
    sections = [f"# Evaluation: {benchmark}", ""]
    if rows:
        sections += ["## Image metrics (paper Table 1 layout)", "",
                     image_table(rows, paper=benchmark == "realestate10k"), ""]  # fmt: skip
    if video_rows:
        sections += ["## Video metrics (paper Table 2 layout)", "", video_table(video_rows), ""]
    if samples:
        plots = _plots(samples, out_dir / "plots")
        grid = example_grid(samples, out_dir / "examples.png")
        sections += ["## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in plots]
        if grid is not None:
            paths["examples"] = grid
            sections += ["", "## Examples", "", "![examples](examples.png)"]
    if notes:
        sections += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    paths["markdown"].write_text("\n".join(sections) + "\n")
    return paths
