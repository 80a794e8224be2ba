"""Torch's intra-op thread count on the CPU: a measured default, an option to override it.

Measured on 2 cores with and without other load (docs/benchmarks.md, "Torch threads on the
CPU"): the geometry's scatters are serial and the processes around torch (ffmpeg's decoder and
x264 encoder, OpenCV's flow and inpainting, the converter's pipeline threads) want cores of
their own, so torch's own default of one thread per core oversubscribes the machine. The
default gives torch half the CPUs this process may run on, at least one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's or Slurm's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_torch_threads() -> int:
    """Half the available CPUs, at least 1 (the rest for decode, encode and OpenCV)."""
    return max(1, available_cpus() // 2)


def check_threads(threads: int | None, name: str = "threads") -> None:
    if threads is not None and threads < 1:
        raise ValueError(f"{name} must be >= 1 (or unset for the default), got {threads}")


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run the block with ``threads`` torch intra-op threads (None: :func:`default_torch_threads`)
    and restore the previous count after it."""
    check_threads(threads)
    before = torch.get_num_threads()
    count = threads or default_torch_threads()
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(before)
