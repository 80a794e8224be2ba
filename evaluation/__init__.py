"""SpatialDreamer evaluation: the paper's protocol and metrics (not implemented yet)."""
