"""`trainer` command line: two-stage training arrives with the trainer issue; --help for now."""

import typer

app = typer.Typer(
    help=(
        "Train SpatialDreamer (paper 3.3-3.5) on shards written by `dvg build`. "
        "Not implemented yet: `trainer fit` and `trainer export` are planned."
    ),
    no_args_is_help=True,
)


@app.callback()
def main() -> None:
    """Train SpatialDreamer on DVG shards (planned: `fit`, `export`)."""
