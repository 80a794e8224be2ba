"""Reports people read: results.json, CSVs, a Markdown table laid out like the paper's Tables 1
and 2, distribution and baseline plots, an example grid.

Every row names its method's depth source and hole filler; every cell is a mean over the pairs
(or videos) of its column, with the standard deviation beside it and the count in its own
column. The paper's figures were measured on other data (RealEstate10K, their test videos), so
they never share a table with ours: they appear in a separate, labelled reference block.
"""

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


def _cell(row: dict[str, Any] | None, metric: str, digits: int) -> str:
    """``mean ± std`` of one metric of a summary row (``–`` when absent)."""
    if row is None or row.get(metric) is None:
        return "–"
    std = row.get(f"{metric}_std")
    if std is None or (isinstance(std, float) and not math.isfinite(std)):
        return _fmt(row[metric], digits)
    return f"{_fmt(row[metric], digits)} ± {_fmt(std, digits)}"


def image_table(rows: Sequence[dict[str, Any]]) -> str:
    """Methods as rows, (offset x metric) as columns, like the paper's Table 1; each offset has
    its pair count, each cell is ``mean ± std`` over those pairs."""
    offsets = sorted({r["offset"] for r in rows}, key=lambda o: (o != "stereo", o))
    metrics = [m for m in ("ssim", "psnr", "lpips") if any(m in r for r in rows)]
    header = ["Method", "Depth", "Hole filler"]
    for offset in offsets:
        header += [f"n {offset}"] + [f"{m.upper()}{_ARROWS[m]} {offset}" for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by_method: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_method.setdefault(row["method"], {})[row["offset"]] = row
    for method, per_offset in by_method.items():
        first = next(iter(per_offset.values()))
        cells = [method, first.get("depth", ""), first.get("fill", "")]
        for offset in offsets:
            row = per_offset.get(offset)
            cells.append(str(row["n"]) if row else "0")
            cells += [_cell(row, m, 2 if m == "psnr" else 3) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def video_table(rows: Sequence[dict[str, Any]]) -> str:
    """The paper's Table 2 layout: FVD and E_warp (x 10^-3), plus E_warp across window seams
    alone; ``mean ± std`` over the videos (FVD is one figure over all of them)."""
    header = ["Method", "Depth", "Hole filler", "n videos", "FVD↓", "E_warp↓ (×10⁻³)",
              "E_warp at window seams↓ (×10⁻³)"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["method"], row.get("depth", ""), row.get("fill", ""), str(row["n"]),
                 _fmt(row.get("fvd"), 2), _cell(row, "ewarp", 3),
                 _cell(row, "ewarp_seams", 3)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _micro_cell(row: dict[str, Any], metric: str, digits: int) -> str:
    """``mean ± std``, with frames reproduced exactly (PSNR ``inf``) counted apart."""
    exact = row.get(f"{metric}_exact", 0)
    if exact and exact == row.get("n_hole_frames" if "hole" in metric else "n_frames"):
        return "exact (∞)"
    cell = _cell(row, metric, digits)
    return f"{cell} (+{exact} exact)" if exact else cell


def micro_table(rows: Sequence[dict[str, Any]]) -> str:
    """One row per method: the hole region and the whole frame (mean ± std over frames), then
    E_warp overall and at window seams (mean ± std over videos, x 10^-3)."""
    lpips = any("lpips" in r for r in rows)
    header = [
        "Method",
        "Depth",
        "Hole filler",
        "n frames (videos)",
        "PSNR↑ holes",
        "SSIM↑ holes",
        "PSNR↑ frame",
        "SSIM↑ frame",
    ] + (["LPIPS↓ frame"] if lpips else [])
    header += ["E_warp↓ (×10⁻³)", "E_warp at window seams↓ (×10⁻³)"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["method"], row.get("depth", ""), row.get("fill", ""),
                 f"{row['n_frames']} ({row['n_videos']})", _micro_cell(row, "psnr_hole", 2),
                 _micro_cell(row, "ssim_hole", 3), _micro_cell(row, "psnr", 2),
                 _micro_cell(row, "ssim", 3)]  # fmt: skip
        if lpips:
            cells.append(_cell(row, "lpips", 3))
        cells += [_cell(row, "ewarp", 3), _cell(row, "ewarp_seams", 3)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paper_reference(benchmark: str) -> list[str]:
    """The paper's own SpatialDreamer figures, as a separate block that says they are not
    comparable with the tables above (other data, other depth, other resolution)."""
    if benchmark == "realestate10k":
        header = "| Paper Table 1 (RealEstate10K test set) | SSIM↑ | PSNR↑ | LPIPS↓ |"
        body = [f"| SpatialDreamer, {offset} | {v['ssim']:.3f} | {v['psnr']:.2f} | "
                f"{v['lpips']:.3f} |" for offset, v in PAPER_TABLE1.items()]  # fmt: skip
    elif benchmark == "video":
        header = "| Paper Table 2 (the paper's test videos) | FVD↓ | E_warp↓ (×10⁻³) |"
        body = [f"| SpatialDreamer | {PAPER_TABLE2['fvd']:.2f} | {PAPER_TABLE2['ewarp']:.3f} |"]
    else:
        return []
    return [
        "## Reference: the paper's reported figures (not comparable)",
        "",
        "Measured by the paper's authors on their data and models; our tables above use other",
        "pairs, depth and sizes, so the numbers must not be read against each other.",
        "",
        header,
        "|---|---|---|" + ("---|" if benchmark == "realestate10k" else ""),
        *body,
        "",
    ]


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
        data = [[s.metrics.get(metric) for s in samples if s.method == m] for m in methods]
        data = [[v for v in values if v is not None and math.isfinite(v)] for values in data]
        left.boxplot(data, tick_labels=methods)
        left.set_title(f"{metric}: per-sample distribution")
        # Against the camera baseline where pairs differ in it, else against the hole fraction.
        by_baseline = len({s.baseline for s in samples}) > 1
        for method in methods:
            points = [(s.baseline if by_baseline else s.hole_fraction, s.metrics.get(metric))
                      for s in samples if s.method == method]  # fmt: skip
            points = [p for p in points if p[1] is not None and math.isfinite(p[1])]
            if points:
                x, y = zip(*points, strict=True)
                right.scatter(x, y, label=method, s=14)
        right.set_xlabel("camera baseline |t| of the pair" if by_baseline else "hole fraction")
        right.set_ylabel(metric)
        right.set_title(f"{metric} vs. {'baseline' if by_baseline else 'hole fraction'}")
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


def example_grid(
    samples: Sequence[Sample],
    path: Path,
    max_rows: int = 6,
    *,
    zoom: int = 1,
    source_label: str = "source",
    target_label: str = "target",
    methods: Sequence[str] | None = None,
) -> Path | None:
    """Rows of pairs: source | warped (holes black) | each method's output | target.

    ``zoom``: nearest-neighbour upscaling of every tile (small frames); ``methods``: which
    methods' outputs, in this order (default: all, sorted)."""
    with_images = [s for s in samples if s.images]
    pairs = list(dict.fromkeys(s.pair_id for s in with_images))[:max_rows]
    if not pairs:
        return None
    if methods is None:
        methods = sorted({s.method for s in with_images})

    def tile(image: np.ndarray, text: str) -> np.ndarray:
        return _label(image.repeat(zoom, axis=0).repeat(zoom, axis=1), text)

    rows = []
    for pair in pairs:
        by_method = {s.method: s for s in with_images if s.pair_id == pair}
        first = next(iter(by_method.values()))
        tiles = [tile(first.images["source"], f"{source_label} {pair}"),
                 tile(first.images["warped"], "warped (holes black)")]  # fmt: skip
        for method in methods:
            sample = by_method.get(method)
            image = sample.images["output"] if sample else np.zeros_like(first.images["source"])
            tiles.append(tile(image, method))
        tiles.append(tile(first.images["target"], target_label))
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
    layout: str = "paper",
    example_options: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write every report file into ``out_dir``; returns their paths by kind.

    ``layout``: ``paper`` (``rows`` in the Table 1 layout, ``video_rows`` in Table 2's) or
    ``micro`` (``rows`` from the micro benchmark: holes, frame and E_warp in one table).
    ``example_options``: keyword arguments of :func:`example_grid`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "csv": out_dir / "samples.csv",
             "summary_csv": out_dir / "summary.csv", "markdown": out_dir / "report.md"}  # fmt: skip
    results = {
        "benchmark": benchmark,
        "config": config,
        "summary": list(rows),
        "video": list(video_rows),
        "paper_reference": {"table1": PAPER_TABLE1, "table2": PAPER_TABLE2},
        "samples": [
            {
                "pair": s.pair_id,
                "method": s.method,
                "depth": s.depth,
                "fill": s.fill,
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
    summary = list(rows) + list(video_rows)
    for path, records in ((paths["csv"], results["samples"]), (paths["summary_csv"], summary)):
        with open(path, "w", newline="") as handle:
            if records:
                fields = list(dict.fromkeys(k for r in records for k in r))
                writer = csv.DictWriter(handle, fieldnames=fields)
                writer.writeheader()
                writer.writerows(records)
    sections = [f"# Evaluation: {benchmark}", ""]
    if rows and layout == "micro":
        sections += ["## Held-out videos (mean ± std over frames; E_warp over videos)", "",
                     micro_table(rows), ""]  # fmt: skip
    elif rows:
        sections += ["## Image metrics (paper Table 1 layout; mean ± std over n pairs)", "",
                     image_table(rows), ""]  # fmt: skip
    if video_rows:
        sections += ["## Video metrics (paper Table 2 layout; mean ± std over n videos)", "",
                     video_table(video_rows), ""]  # fmt: skip
    if samples:
        plots = _plots(samples, out_dir / "plots")
        grid = example_grid(samples, out_dir / "examples.png", **(example_options or {}))
        sections += ["## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in plots]
        if grid is not None:
            paths["examples"] = grid
            sections += ["", "## Examples", "", "![examples](examples.png)"]
    if notes:
        sections += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    reference = paper_reference(benchmark)
    if reference:
        sections += ["", *reference]
    paths["markdown"].write_text("\n".join(sections) + "\n")
    return paths
