"""`evaluation` command line. Benchmarks arrive with the evaluation issue; only --help for now."""

import typer

app = typer.Typer(
    help=(
        "Measure stereo synthesis the paper's way (PSNR, SSIM, LPIPS at t=5/10; FVD, E_warp). "
        "Not implemented yet: `evaluation run --benchmark realestate10k` is planned."
    ),
    no_args_is_help=True,
)


@app.callback()
def main() -> None:
    """Evaluate stereo synthesis methods (planned: `run`)."""
