"""The model card `trainer export` writes next to the model (``README.md``, the Hub's format: YAML
metadata, then Markdown): what the model was trained on, with which settings, the stereo
deviation strength range it knows, what it is for and where it stops being reliable."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from dvg.shards.manifest import manifest_path, read_manifest
from pipelines.model import ModelConfig

CARD_NAME = "README.md"
BUILD_CONFIG_NAME = "build_config.json"  # written by `dvg build` beside its manifest


def _data_summary(shards: str) -> list[str]:
    """Lines on the training shards: how many, how many clips, how `dvg build` made them."""
    try:
        entries, section = read_manifest(shards)
    except (OSError, ValueError) as error:
        return [f"- shards: `{shards}` (manifest not readable at export time: {error})"]
    lines = [
        f"- shards: `{shards}`: {len(entries)} shard(s), {sum(e.nsamples for e in entries)} "
        f"clips, shard format {section.get('format_version', '?')}, `dvg build` config hash "
        f"{section.get('config_hash', '?')}"
    ]
    build_file = manifest_path(shards).parent / BUILD_CONFIG_NAME
    try:
        build = json.loads(build_file.read_text())
        backends = ", ".join(f"{k} `{build[k]['name']}`" for k in ("depth", "inpaint", "flow"))
        lines.append(f"- `dvg build` preset `{build.get('preset')}`: {backends}")
    except (OSError, ValueError, KeyError, TypeError):
        pass  # the shards were moved without their build_config.json
    return lines


def model_card(run_config: dict[str, Any] | None, model: ModelConfig, step: int | None) -> str:
    """The card's text. run_config: the run's ``config.json`` (None for a re-exported model)."""
    lines = [
        "---",
        "library_name: diffusers",
        "tags: [spatialdreamer, stereo, novel-view-synthesis, video-to-video]",
        "---",
        "",
        "# SpatialDreamer stereo video model",
        "",
        "Generates the right view of a monocular (left) video from its depth-warped right view and",
        "hole mask (SpatialDreamer, paper 3.3-3.5). Load it with",
        "`SpatialDreamerPipeline.from_pretrained(dir)`, with",
        "`diffusers.DiffusionPipeline.from_pretrained(dir, trust_remote_code=True)` (the",
        "directory's `pipeline.py` only imports the installed `spatialdreamer` package), or use",
        "`spatialdreamer convert VIDEO --method spatialdreamer --model DIR`.",
        "",
        "## Training",
        "",
    ]
    if run_config is None:
        lines.append("- exported from an existing model directory; no run record")
    else:
        data, run = run_config.get("data", {}), run_config.get("run", {})
        lines += [
            f"- stage {run_config.get('stage')} of 2 (preset `{run_config.get('preset')}`), "
            f"{step if step is not None else '?'} of {run.get('steps')} steps, batch "
            f"{data.get('batch_size')} per process, resolution {data.get('resolution')}, "
            f"mixed precision `{run.get('mixed_precision')}`, EMA {bool(run.get('ema'))}",
            f"- code version {run_config.get('code_version', 'unknown')}",
        ]
        init_from = run_config.get("model", {}).get("init_from")
        if init_from:
            lines.append(f"- started from `{init_from}` (stage 1)")
        lines += _data_summary(str(data.get("shards")))
    lines += [
        f"- base components: SVD `{model.svd}`, RefinerNet (SD2.1) `{model.refiner}`, "
        f"TIL {'on' if model.til else 'off'}",
        "",
        "## Stereo deviation strength",
        "",
    ]
    if model.deviation_range is not None:
        low, high = model.deviation_range
        lines += [
            f"Default strength {model.default_deviation:.4g}: the median of the strength s",
            f"(paper Eq. 4) over {model.deviation_samples} training samples. The training data",
            f"covered {low:.4g} to {high:.4g} (5-95%); outside that range the model extrapolates.",
        ]
    else:
        lines.append(
            f"Default strength {model.default_deviation:.4g} (a placeholder: no training record)."
        )
    lines += [
        "",
        "## Intended use",
        "",
        "Converting ordinary (monocular) video into stereo (side-by-side, top-bottom or two",
        "files) for viewing on VR headsets and 3D displays, and research on stereo video",
        "synthesis. The geometry of the right view comes from a monocular depth estimate; the",
        "model fills what the warp cannot show (disocclusions) from the left view.",
        "",
        "## Limits",
        "",
        "- Depth errors become stereo errors: the model repaints holes, it does not correct the",
        "  depth it is given.",
        "- Trained on DVG's self-supervised pairs (a real frame and a rendered novel view), not",
        "  on real stereo footage; quality on content far from the training videos is unknown.",
        "- Temporal consistency holds within the trained clip length and is stitched across",
        "  windows; fast motion and thin structures are the weakest cases.",
        "- Not a measurement device: disparities are relative and not metric.",
        "",
        "## Configuration",
        "",
        "```json",
        json.dumps({"run": run_config, "model": dataclasses.asdict(model)}, indent=1, default=str),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_model_card(
    out: Path, run_config: dict[str, Any] | None, model: ModelConfig, step: int | None
) -> Path:
    path = Path(out) / CARD_NAME
    path.write_text(model_card(run_config, model, step))
    return path
