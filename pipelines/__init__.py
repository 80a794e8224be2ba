"""SpatialDreamer inference: the model (`pipelines.model`), `SpatialDreamerPipeline` (a mono video
plus its forward-rendered right view -> the right view) and `spatialdreamer convert` (mono video
-> stereo video file). See docs/inference.md and docs/convert.md."""
