"""`python -m trainer ...` (what `torchrun` and `accelerate launch` start on every rank)."""

from trainer.cli import app

app()
