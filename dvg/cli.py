"""`dvg` command line: thin wrappers over library functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help=(
        "DVG: build paired stereo training data from monocular video (SpatialDreamer paper 3.2). "
        "`dvg build` arrives with the data-engine issue; `dvg demo` runs the geometry core on "
        "the bundled synthetic example."
    ),
    no_args_is_help=True,
)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("demo_output"),
    frames: Annotated[int, typer.Option(min=2, help="Frames to render.")] = 8,
    seed: Annotated[int, typer.Option(help="Scene texture seed.")] = 0,
) -> None:
    """Render the bundled example scene and write a preview of the DVG geometry outputs."""
    from dvg.demo import DemoConfig, run_demo

    result = run_demo(out, DemoConfig(seed=seed, num_frames=frames))
    typer.echo(f"example video:   {result.video}")
    typer.echo(f"sidecar depth:   {result.depth}")
    typer.echo(
        f"occlusion mask M vs exact: IoU {result.mask_iou:.3f} "
        f"(after Eq. 2 refinement {result.refined_mask_iou:.3f}); "
        f"mask flicker {result.flicker_before:.4f} -> {result.flicker_after:.4f}"
    )
    typer.echo(f"preview written to {result.preview.resolve()}")


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
    from dvg.synthetic import SCENES, render_scene, write_clip

    if scene not in SCENES:
        raise typer.BadParameter(f"unknown scene {scene!r}; known: {', '.join(sorted(SCENES))}")
    clip = render_scene(scene, seed=seed, height=height, width=width, num_frames=frames)
    for kind, path in write_clip(clip, out, scene).items():
        typer.echo(f"{kind}: {path}")
