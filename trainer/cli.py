"""`trainer` command line: thin wrappers over trainer.loop.fit, trainer.vae.fit_vae and model
export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help=(
        "Train SpatialDreamer (paper 3.3-3.5) on shards written by `dvg build`: "
        "`trainer fit` (stage 1 or 2), `trainer export`, and `trainer fit-vae` (stage 0 of the "
        "micro preset)."
    ),
    no_args_is_help=True,
)


@app.command()
def fit(
    shards: Annotated[str, typer.Argument(help="`dvg build` output folder or its manifest.json.")],
    run_dir: Annotated[
        Path | None, typer.Option(help="Run directory (default runs/PRESET-stageN).")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="paper, tiny or micro.")] = None,
    stage: Annotated[int | None, typer.Option(help="1 (frames) or 2 (8-frame clips).")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file of per-section overrides.")] = None,
    init_from: Annotated[
        str | None, typer.Option(help="Stage 2: a stage-1 run directory or exported model.")
    ] = None,
    init_ema: Annotated[
        bool | None,
        typer.Option(
            "--init-ema/--no-init-ema",
            help="Stage 2: start from the --init-from run's EMA weights.",
        ),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run's last checkpoint.")] = False,
    steps: Annotated[int | None, typer.Option(help="Total optimisation steps.")] = None,
    svd: Annotated[str | None, typer.Option(help="SVD hub id or local dir.")] = None,
    refiner: Annotated[str | None, typer.Option(help="SD2.1 hub id or local dir.")] = None,
    vae: Annotated[
        str | None, typer.Option(help="Micro preset: the stage-0 VAE folder (`trainer fit-vae`).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Per-process batch size.")] = None,
    resolution: Annotated[int | None, typer.Option(help="Square training resolution.")] = None,
    mixed_precision: Annotated[str | None, typer.Option(help="no, bf16 or fp16.")] = None,
    grad_accum: Annotated[int | None, typer.Option(help="Gradient accumulation steps.")] = None,
) -> None:
    """Train one stage; resumable with --resume."""
    from trainer.config import apply_overrides, load_config
    from trainer.loop import NonFiniteLossError
    from trainer.loop import fit as run_fit

    def given(**values):
        return {k: v for k, v in values.items() if v is not None}

    try:
        cfg = load_config(config, preset=preset, stage=stage)
        overrides = {
            "data": {"shards": shards, **given(batch_size=batch_size, resolution=resolution)},
            "model": given(
                init_from=init_from, init_ema=init_ema, svd=svd, refiner=refiner, vae=vae
            ),
            "run": given(steps=steps, mixed_precision=mixed_precision, grad_accum=grad_accum),
        }
        cfg = apply_overrides(cfg, {k: v for k, v in overrides.items() if v})
        run_dir = run_dir or Path("runs") / f"{cfg.preset}-stage{cfg.stage}"
        result = run_fit(cfg, run_dir, resume=resume)
    except (ValueError, NonFiniteLossError) as error:
        typer.echo(f"trainer fit: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"trained to step {result.step}; run directory {result.run_dir.resolve()}")


@app.command("fit-vae")
def fit_vae(
    shards: Annotated[str, typer.Argument(help="`dvg build` output folder or its manifest.json.")],
    out: Annotated[Path, typer.Option(help="Folder for the VAE (diffusers layout).")],
    kind: Annotated[
        str | None,
        typer.Option(
            help="linear: PCA encoder + least-squares decoder in closed form (default); kl: a "
            "trained AutoencoderKLTemporalDecoder (SVD's VAE class)."
        ),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Optimisation steps (kind kl).")] = None,
    resolution: Annotated[int | None, typer.Option(help="Square training resolution.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Runs of contiguous frames per step.")
    ] = None,
    downsample: Annotated[
        int | None, typer.Option(help="Pixels per latent cell: 2, 4 or 8 (SVD's: 8).")
    ] = None,
    num_frames: Annotated[
        int | None,
        typer.Option(help="Contiguous frames decoded together (the pipeline decodes 8 + context)."),
    ] = None,
    held_out: Annotated[
        str | None,
        typer.Option(help="Shards for the held-out PSNR (default: the last tenth of SHARDS)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the weights and the draws.")] = None,
) -> None:
    """Stage 0 of the micro preset: fit a small VAE to the shards' frames (a closed-form linear
    autoencoder, or a trained AutoencoderKLTemporalDecoder, SVD's VAE class); writes it and
    OUT/vae_report.json (held-out reconstruction PSNR)."""
    from trainer.vae import VAEConfig
    from trainer.vae import fit_vae as run_fit_vae

    values = {"kind": kind, "steps": steps, "resolution": resolution, "batch_size": batch_size,
              "downsample": downsample, "num_frames": num_frames, "held_out": held_out,
              "seed": seed}  # fmt: skip
    try:
        config = VAEConfig(shards=shards, **{k: v for k, v in values.items() if v is not None})
        result = run_fit_vae(config, out)
    except ValueError as error:
        typer.echo(f"trainer fit-vae: {error}", err=True)
        raise typer.Exit(2) from None
    before = "fitted in closed form" if config.kind == "linear" else "untrained"
    typer.echo(
        f"VAE written to {out.resolve()}: held-out PSNR {result.psnr:.2f} dB ({before} "
        f"{result.initial_psnr:.2f} dB), scaling factor {result.scaling_factor:.4g}, "
        f"{result.seconds:.0f} s"
    )


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="Run directory (uses its last checkpoint).")],
    out: Annotated[Path, typer.Option(help="Directory for the diffusers-style model.")],
    ema: Annotated[
        bool, typer.Option(help="Export the EMA weights (the run must train with run.ema).")
    ] = False,
) -> None:
    """Write the trained model as a directory the inference pipeline loads, with the stereo
    deviation strength measured on the training data as its default (median) and range."""
    from trainer.stages import export_model

    try:
        model = export_model(run, out, ema=ema)
    except ValueError as error:
        typer.echo(f"trainer export: {error}", err=True)
        raise typer.Exit(2) from None
    config = model.config
    typer.echo(f"model written to {out.resolve()}")
    if config.deviation_range is not None:
        low, high = config.deviation_range
        typer.echo(
            f"deviation strength: default {config.default_deviation:.4g} (training median over "
            f"{config.deviation_samples} samples), training range 5-95% {low:.4g}-{high:.4g}"
        )
