"""`dvg` command line: thin wrappers over library functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help=(
        "DVG: build paired stereo training data from monocular video (SpatialDreamer paper 3.2). "
        "`dvg build` writes WebDataset shards; `dvg inspect` and `dvg preview` show what it made."
    ),
    no_args_is_help=True,
)


def _overrides(**sections: dict[str, object]) -> dict[str, dict[str, object]]:
    """Drop unset CLI options so they do not override the preset or the config file."""
    return {
        name: {k: v for k, v in values.items() if v is not None}
        for name, values in sections.items()
        if any(v is not None for v in values.values())
    }


@app.command()
def build(
    videos: Annotated[
        list[str],
        typer.Option(
            "--videos",
            help="A folder (searched recursively), a .txt/.lst list of paths, a glob or a "
            "file; repeat for several.",
        ),
    ],
    out: Annotated[Path, typer.Option(help="Output folder of shards.")],
    preset: Annotated[
        str | None, typer.Option(help="Backends preset: paper (dpt+sd+raft) or offline.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML file of per-section overrides (see README).")
    ] = None,
    executor: Annotated[str | None, typer.Option(help="local or ray.")] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster to join (default: RAY_ADDRESS or local).")
    ] = None,
    num_gpus: Annotated[float | None, typer.Option(help="GPUs per DVG actor (Ray).")] = None,
    dvg_actors: Annotated[int | None, typer.Option(help="DVG actors (Ray).")] = None,
    decode_workers: Annotated[int | None, typer.Option(help="Concurrent decoders (Ray).")] = None,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="Torch CPU threads (per DVG actor); default: half the CPUs."),
    ] = None,
    depth: Annotated[str | None, typer.Option(help="Depth backend.")] = None,
    depth_model: Annotated[str | None, typer.Option(help="Depth hub id or local path.")] = None,
    depth_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder of depth sidecars (e.g. `dvg depth --out`); implies --depth sidecar."
        ),
    ] = None,
    inpaint: Annotated[str | None, typer.Option(help="Inpainting backend.")] = None,
    inpaint_model: Annotated[
        str | None, typer.Option(help="Inpainting hub id or local path.")
    ] = None,
    flow: Annotated[str | None, typer.Option(help="Optical-flow backend.")] = None,
    flow_model: Annotated[str | None, typer.Option(help="Flow checkpoint path.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:1...")] = None,
    clip_length: Annotated[int | None, typer.Option(help="Frames per clip.")] = None,
    short_side: Annotated[int | None, typer.Option(help="Target short side in pixels.")] = None,
    fps: Annotated[float | None, typer.Option(help="Resample videos to this frame rate.")] = None,
    max_clips_per_video: Annotated[int | None, typer.Option(help="Clips per video cap.")] = None,
    videos_per_group: Annotated[int | None, typer.Option(help="Input videos per shard.")] = None,
    keep_disparity: Annotated[
        bool | None,
        typer.Option(
            "--keep-disparity/--no-keep-disparity",
            help="Also store x1's disparity (16-bit PNG); off by default, the trainer never "
            "reads it.",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the per-clip stereo draw.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Rebuild every group from scratch.")] = False,
    retry_failed: Annotated[
        bool, typer.Option(help="Redo committed groups that recorded failures.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show the progress display.")] = True,
) -> None:
    """Run the DVG data engine over videos and write resumable WebDataset shards."""
    from rich.console import Console

    from dvg.backends import MissingWeightsError
    from dvg.engine import apply_overrides, load_config
    from dvg.engine import build as run_build
    from dvg.engine.lock import OutputLockedError
    from dvg.engine.progress import summary_table

    devices = {"device": device} if device else {}
    if depth_dir is not None:
        if depth not in (None, "sidecar"):
            typer.echo(
                f"dvg build: --depth-dir reads sidecars; it cannot go with --depth {depth}",
                err=True,
            )
            raise typer.Exit(2)
        depth, devices_depth = "sidecar", {"options": {"dir": str(depth_dir)}}
    else:
        devices_depth = {}
    try:
        cfg = load_config(config, preset)
        cfg = apply_overrides(
            cfg,
            _overrides(
                depth={"name": depth, "model": depth_model, **devices, **devices_depth},
                inpaint={"name": inpaint, "model": inpaint_model, **devices},
                flow={"name": flow, "model": flow_model, **devices},
                video={
                    "clip_length": clip_length,
                    "short_side": short_side,
                    "fps": fps,
                    "max_clips_per_video": max_clips_per_video,
                },
                output={"videos_per_group": videos_per_group, "keep_disparity": keep_disparity},
                stereo={"seed": seed},
                executor={
                    "kind": executor,
                    "ray_address": ray_address,
                    "num_gpus": num_gpus,
                    "dvg_actors": dvg_actors,
                    "decode_workers": decode_workers,
                    "threads": threads,
                },
            ),
        )
        summary = run_build(
            videos, out, cfg, overwrite=overwrite, retry_failed=retry_failed, show_progress=progress
        )
    except (ValueError, MissingWeightsError, OutputLockedError) as error:
        typer.echo(f"dvg build: {error}", err=True)
        raise typer.Exit(2) from None
    Console().print(summary_table(summary))
    hint = summary.rerun_hint()
    if not summary.succeeded:
        typer.echo(
            f"dvg build: no sample was produced; {hint or 'see the ledgers (dvg inspect)'}",
            err=True,
        )
        raise typer.Exit(1)
    if hint:
        typer.echo(f"dvg build: nothing new was written: {hint}", err=True)


@app.command()
def inspect(
    out: Annotated[Path, typer.Argument(help="Output folder of `dvg build`.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead.")] = False,
) -> None:
    """Summarise a build from its ledgers: counts, failure reasons, mask and disparity stats."""
    import json

    from rich.console import Console

    from dvg.report import inspect_output, render_inspect

    try:
        report = inspect_output(out)
    except ValueError as error:
        typer.echo(f"dvg inspect: {error}", err=True)
        raise typer.Exit(2) from None
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=1))
    else:
        Console().print(render_inspect(report))


@app.command()
def preview(
    source: Annotated[Path, typer.Argument(help="A shard .tar or a `dvg build` output folder.")],
    out: Annotated[Path, typer.Option(help="Contact sheet PNG to write.")] = Path("preview.png"),
    samples: Annotated[int, typer.Option(min=1, help="Samples to show.")] = 4,
    frames: Annotated[int, typer.Option(min=1, help="Frames per sample.")] = 1,
    video: Annotated[
        Path | None, typer.Option(help="Also write a labelled mp4 of the first chosen sample.")
    ] = None,
    keys: Annotated[
        list[str] | None,
        typer.Option("--keys", help="Show these sample keys (repeat or comma-separate)."),
    ] = None,
    random: Annotated[
        int | None, typer.Option(min=1, help="Show N samples drawn at random from all shards.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of --random.")] = 0,
) -> None:
    """Draw x1, x2, M over x1, x1~ and depth for a few samples (and optionally an mp4)."""
    from dvg.report import preview as draw_preview

    names = [k.strip() for item in keys for k in item.split(",") if k.strip()] if keys else None
    try:
        result = draw_preview(
            source, out, samples=samples, frames_per_sample=frames, video=video, keys=names,
            random=random, seed=seed,
        )  # fmt: skip
    except ValueError as error:
        typer.echo(f"dvg preview: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"preview written to {result.png.resolve()} ({len(result.rows)} rows)")
    if result.video is not None:
        typer.echo(f"side-by-side video written to {result.video.resolve()}")


@app.command()
def synth(
    scene: Annotated[str, typer.Argument(help="Scene name (see dvg.synthetic.SCENES).")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("synthetic"),
    seed: Annotated[int, typer.Option(help="Texture seed.")] = 0,
    frames: Annotated[int | None, typer.Option(help="Frames (scene default if unset).")] = None,
    height: Annotated[int | None, typer.Option(help="Height (scene default if unset).")] = None,
    width: Annotated[int | None, typer.Option(help="Width (scene default if unset).")] = None,
) -> None:
    """Render a procedural scene to <scene>.mp4 with sidecar depth and camera files."""
    from dvg.progress import Progress
    from dvg.synthetic import SCENES, build_scene, write_clip

    if scene not in SCENES:
        raise typer.BadParameter(f"unknown scene {scene!r}; known: {', '.join(sorted(SCENES))}")
    setup = build_scene(scene, seed, height, width, frames)
    frames_n = int(setup.world_to_camera.shape[0])
    # Each frame is ray cast for both eyes, then each frame pair for its flow: 2F - 1 steps.
    with Progress("dvg synth", 2 * frames_n - 1, unit="steps", log_every=10.0) as progress:
        clip = setup.render(on_step=lambda done, _: progress.update(done))
    for kind, path in write_clip(clip, out, scene).items():
        typer.echo(f"{kind}: {path}")


@app.command("depth")
def depth_command(
    videos: Annotated[
        list[str],
        typer.Option(
            "--videos", help="A folder (searched recursively), a .txt list, a glob or a file."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the <file name>.invdepth/ sidecars (default: next to each video)."
        ),
    ] = None,
    depth: Annotated[
        str, typer.Option(help="Depth backend: dpt, depth-anything or marigold.")
    ] = "dpt",
    depth_model: Annotated[str | None, typer.Option(help="Depth hub id or local path.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1...")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, float32, float16 or bfloat16.")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Frames per model call.")] = 8,
    max_side: Annotated[
        int | None, typer.Option(help="Store maps with the long side at most this (pixels).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Recompute finished videos.")] = False,
    progress: Annotated[bool, typer.Option(help="Show the progress display.")] = True,
) -> None:
    """Estimate depth once and keep it as compact sidecars (16-bit PNG + scale per frame) that
    `dvg build --depth-dir` and `spatialdreamer convert --depth` read. Resumable."""
    from dvg.backends import BackendSpec, MissingWeightsError
    from dvg.engine.depth_export import DepthExportConfig, export_depth

    try:
        spec = BackendSpec(
            depth, model=depth_model, device=device, dtype=dtype, batch_size=batch_size
        )
        config = DepthExportConfig(depth=spec, max_side=max_side, overwrite=overwrite)
        summary = export_depth(videos, out, config, show_progress=progress)
    except (ValueError, MissingWeightsError) as error:
        typer.echo(f"dvg depth: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"dvg depth: {len(summary.written)} written, {len(summary.skipped)} already done, "
        f"{len(summary.failed)} failed, {summary.frames} frames in {summary.seconds:.1f} s"
    )
    for video, reason in summary.failed.items():
        typer.echo(f"  failed: {video}: {reason}", err=True)
    if summary.failed:
        raise typer.Exit(1)
