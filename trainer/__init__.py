"""SpatialDreamer trainer: the two-stage training of paper 3.3-3.5 (not implemented yet)."""
