"""Pretrained networks reimplemented in plain torch, loading their official checkpoints."""

from dvg.models.raft import RAFT, RAFTConfig

__all__ = ["RAFT", "RAFTConfig"]
