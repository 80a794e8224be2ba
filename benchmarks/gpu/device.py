"""What the GPU benchmarks measure about the device: its peak bf16 rate, a measured matmul rate,
utilisation sampled during a run, and peak memory.

Peak rates are the vendors' datasheet figures for dense bf16 tensor-core math (no 2:4 sparsity;
the datasheets print the sparse figure, twice these). The H200 SXM has the H100 SXM's math units,
so both read 989.4 TFLOP/s; the NVL (PCIe) parts run at lower clocks.
"""

from __future__ import annotations

import gc
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field

import torch

# (substring of torch.cuda.get_device_name(), dense bf16 TFLOP/s), most specific first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200 NVL", 835.5),
    ("H100 NVL", 835.5),
    ("H100 PCIe", 756.5),
    ("GH200", 989.4),
    ("H200", 989.4),
    ("H100", 989.4),
    ("H800", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.1),
    ("L4", 121.0),
    ("A10G", 70.0),
)


def peak_bf16_tflops(device_name: str) -> tuple[str, float] | None:
    """(matched table entry, dense bf16 TFLOP/s) for a device name, None when not in the table."""
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return key, tflops
    return None


def device_name() -> str | None:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def matmul_tflops(size: int = 8192, repeats: int = 10, device: str = "cuda") -> float:
    """Measured bf16 rate of a ``size`` cube matrix product (mean of ``repeats`` after 3 warm-ups),
    the practical ceiling next to the datasheet peak."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    seconds = (time.perf_counter() - start) / repeats
    return 2 * size**3 / seconds / 1e12


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak_memory() -> None:
    """Free what earlier work left (cycles included) and restart the peak count."""
    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_bytes() -> int | None:
    """``torch.cuda.max_memory_allocated`` since the last reset (None without a GPU)."""
    return torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None


def _read_utilisation() -> float | None:
    """GPU 0's utilisation in percent: NVML through torch, else nvidia-smi, else None."""
    try:
        return float(torch.cuda.utilization(0))
    except Exception:
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    query = [smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=5, check=True)
        return float(out.stdout.strip().splitlines()[0])
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return None


@dataclass
class UtilisationMonitor:
    """Samples GPU utilisation every ``interval`` seconds in a thread while in its ``with`` block.

    ``mean`` is the mean of the samples (percent of sample periods with a kernel running, as NVML
    defines it); None without a GPU or when neither NVML nor nvidia-smi answers.
    """

    interval: float = 0.5
    samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> UtilisationMonitor:
        if torch.cuda.is_available():
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            value = _read_utilisation()
            if value is None:
                return
            self.samples.append(value)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None
