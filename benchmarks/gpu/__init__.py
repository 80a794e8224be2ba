"""The prepared GPU run: every GPU figure of docs/benchmarks.md from one command.

``bash benchmarks/gpu/run.sh`` (what a GPU machine runs; see the "GPU run" section of
docs/benchmarks.md) installs the carried wheels (``make gpu-wheels``), then
``python -m benchmarks.gpu.run`` checks the GPU and runs each part (dvg build, training,
conversion, the micro reproduction) under its own time budget, writing results as each part
finishes. ``--smoke`` runs the same parts with tiny sizes on a CPU (tests/benchmarks).
"""
