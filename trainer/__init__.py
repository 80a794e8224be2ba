"""SpatialDreamer trainer: the two-stage training of paper 3.3-3.5 on DVG shards.

``trainer.data`` streams shards (format v1, read through ``dvg.shards`` only), ``objective``
holds the EDM denoising and stereo-aware losses, ``stages`` what each stage builds and trains,
``loop`` the accelerate training loop, ``checkpoint`` the run's checkpoints, ``validation`` the
held-out learning curve, ``vae`` stage 0 of the micro preset (a VAE trained on the shards).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("spatialdreamer")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"
