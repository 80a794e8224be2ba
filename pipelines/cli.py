"""`spatialdreamer` command line: conversion arrives with the inference issue; --help for now."""

import typer

app = typer.Typer(
    help=(
        "Turn a mono video into a stereo (spatial) video. "
        "Not implemented yet: `spatialdreamer convert INPUT --out OUTPUT` is planned."
    ),
    no_args_is_help=True,
)


@app.callback()
def main() -> None:
    """Convert mono video to stereo video (planned: `convert`)."""
