"""SpatialDreamer inference pipelines: mono video to stereo video (not implemented yet)."""
