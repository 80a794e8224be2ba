"""`evaluation` command line: thin wrapper over evaluation.runner.run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help=(
        "Measure stereo synthesis the paper's way (PSNR, SSIM, LPIPS at t=5/10; FVD, E_warp): "
        "`evaluation run --benchmark synthetic|realestate10k|video|stereo|micro`."
    ),
    no_args_is_help=True,
)


@app.callback()
def main() -> None:
    """Evaluate stereo synthesis methods."""


@app.command()
def run(
    benchmark: Annotated[
        str, typer.Option(help="synthetic, realestate10k, video, stereo or micro.")
    ],
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("evaluation_output"),
    methods: Annotated[
        list[str],
        typer.Option("--methods", help="oracle, vae-oracle, warp-telea, warp-sd, spatialdreamer."),
    ] = ["oracle", "warp-telea"],  # noqa: B006 (typer needs a list default)
    data: Annotated[str | None, typer.Option(help="RealEstate10K folder.")] = None,
    pairs: Annotated[
        str | None,
        typer.Option(help="stereo: folder of your clips (NAME_L + NAME_R, or NAME_SBS / NAME_TB)."),
    ] = None,
    every: Annotated[int, typer.Option(help="stereo: score every n-th frame.")] = 10,
    model: Annotated[
        list[str] | None,
        typer.Option(
            help="Exported SpatialDreamer model: DIR (method spatialdreamer), or LABEL=DIR, "
            "repeatable, each a row of its own (e.g. --model untrained=DIR --model stage2=DIR)."
        ),
    ] = None,
    depth_model: Annotated[
        str | None, typer.Option(help="ground-truth, a depth backend (dpt, sidecar, ...) or path.")
    ] = None,
    lpips_trunk: Annotated[str, typer.Option(help="alex or vgg.")] = "alex",
    lpips_trunk_weights: Annotated[str | None, typer.Option(help="torchvision checkpoint.")] = None,
    lpips_linear_weights: Annotated[str | None, typer.Option(help="LPIPS lin layers.")] = None,
    max_pairs: Annotated[int | None, typer.Option(help="Evaluate at most this many pairs.")] = None,
    i3d: Annotated[str | None, typer.Option(help="I3D TorchScript file for FVD (video).")] = None,
    resolution: Annotated[
        int | None, typer.Option(help="micro: side of the square frames (default 64).")
    ] = None,
    frames: Annotated[
        int | None, typer.Option(help="micro: frames per video (default 12).")
    ] = None,
    seeds: Annotated[
        str | None, typer.Option(help="micro: held-out seeds, comma-separated (default 1000,1001).")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="micro: Euler steps of the SpatialDreamer models (10).")
    ] = None,
    scenes: Annotated[
        str | None, typer.Option(help="micro: dvg.synthetic scenes, comma-separated (four).")
    ] = None,
) -> None:
    """Score methods on a benchmark; writes results.json, CSVs, report.md, plots, examples."""
    from dvg.backends import MissingWeightsError
    from evaluation.methods import parse_models
    from evaluation.metrics import MissingMetricWeightsError
    from evaluation.runner import EvaluationConfig, parse_methods
    from evaluation.runner import run as run_evaluation

    micro = {"size": resolution, "frames": frames, "seeds": seeds, "steps": steps, "scenes": scenes}
    extra = {"i3d": i3d, **micro}
    options = {"size": "--resolution", "frames": "--frames", "seeds": "--seeds",
               "steps": "--steps", "scenes": "--scenes"}  # fmt: skip
    try:
        given = [options[k] for k, v in micro.items() if v is not None]
        if given and benchmark != "micro":
            raise ValueError(f"{', '.join(given)}: options of the micro benchmark only")
        plain, labelled = parse_models(model or [])
        config = EvaluationConfig(
            benchmark=benchmark, out=str(out), methods=parse_methods(methods), data=data,
            pairs=pairs, every=every, model=plain, models=labelled,
            depth_model=depth_model, lpips_trunk=lpips_trunk,
            lpips_trunk_weights=lpips_trunk_weights, lpips_linear_weights=lpips_linear_weights,
            max_pairs=max_pairs, extra={k: v for k, v in extra.items() if v is not None},
        )  # fmt: skip
        paths = run_evaluation(config)
    except (ValueError, MissingMetricWeightsError, MissingWeightsError) as error:
        typer.echo(f"evaluation run: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo((Path(paths["markdown"])).read_text())
    typer.echo(f"report written to {Path(paths['markdown']).resolve()}")
