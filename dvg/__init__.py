"""DVG: the Depth-based Video Generation data engine of SpatialDreamer (paper 3.2).

It turns monocular videos into paired stereo training data: depth, forward softmax splatting to
a sampled stereo viewpoint, inpainting, backward rendering to the masked source view and its
occlusion mask, and optical-flow refinement of the masks across frames (Eq. 2).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("spatialdreamer")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
