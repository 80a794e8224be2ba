"""The GPU run: check the machine, then run every GPU benchmark part under its own time budget.

    python -m benchmarks.gpu.run --out DIR [--smoke] [--parts dvg,train,convert]
                                 [--deadline 450] [--work DIR]
    python -m benchmarks.gpu.run --out DIR --parts micro --deadline 540   # its own call

(``bash benchmarks/gpu/run.sh`` installs the carried wheels first and calls this.) Each part is
one of the benchmark scripts run in its own process group with a JSON file it rewrites after
every finished row; when the part ends, fails or runs out of time, what it finished is written
at once to ``DIR/<part>.json`` and as a marked section of ``DIR/benchmarks.md`` (copied into
docs/benchmarks.md by ``python -m benchmarks.gpu.apply``), so a later failure loses nothing.
Parts are scheduled against one deadline: a part that ends early leaves its time to the next.

Without a GPU the run stops after the check, with exit status 2 and the reason; ``--smoke`` runs
every part with tiny sizes on the CPU instead (what the tests run, so the script cannot rot).

Files in DIR (at most 8 come back from the device tool): env.json, one JSON per part,
benchmarks.md and run.log (written by run.sh).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks._report import machine_description, update_section, write_json

# Packages the GPU image lacks, carried as wheels (benchmarks/gpu/wheels.txt).
CARRIED = ("diffusers", "webdataset", "imageio_ffmpeg")
EXIT_NO_GPU = 2
DEFAULT_DEADLINE = 450.0  # seconds from the start; the device tool call gets 540


@dataclass(frozen=True)
class Part:
    """One benchmark script run as a part: its section of docs/benchmarks.md, its budget on the
    GPU (seconds) and its arguments on the GPU and in the CPU smoke run. ``{work}`` in the
    arguments is the shared work folder (random weights are written there once)."""

    name: str
    section: str
    title: str
    budget: float
    module: str | None
    gpu_args: tuple[str, ...]
    smoke_args: tuple[str, ...]
    own_call: bool = False
    """Too long to share a device call: runs only when ``--parts`` names it."""


PARTS: tuple[Part, ...] = (
    Part(
        "dvg",
        "dvg-paper-gpu",
        "dvg build, paper preset (gpu)",
        110,
        "benchmarks.dvg",
        ("--preset", "paper", "--model-size", "paper", "--size", "512x512,512x288",
         "--frames", "32", "--videos", "2", "--clip", "16", "--weights", "{work}/dvg-weights"),
        ("--preset", "paper", "--model-size", "tiny", "--size", "96x64", "--frames", "8",
         "--videos", "1", "--clip", "8", "--inpaint-steps", "2", "--weights",
         "{work}/dvg-weights"),
    ),
    Part(
        "train",
        "train-paper-gpu",
        "trainer fit, paper-size architecture (gpu)",
        170,
        "benchmarks.train",
        ("--random-model", "paper", "--rows", "1:1024,2:512,1:512", "--steps", "6", "--flops",
         "--components", "{work}/models"),
        ("--random-model", "tiny", "--rows", "1:64,2:64", "--steps", "1", "--batch-size", "1",
         "--num-workers", "0", "--flops", "--components", "{work}/models"),
    ),
    Part(
        "convert",
        "convert-spatialdreamer-paper",
        "spatialdreamer convert, SpatialDreamer paper model (gpu)",
        110,
        "benchmarks.convert",
        ("--spatialdreamer", "--model-size", "paper", "--rows",
         "512:fp16,1024:fp16,1024:fp16-offload-tiles,512:bf16,512:fp16-offload,1024:bf16",
         "--frames", "16", "--steps", "25", "--models", "{work}/models"),
        ("--spatialdreamer", "--model-size", "tiny", "--rows", "128:fp32",
         "--frames", "8", "--steps", "1", "--models", "{work}/models"),
    ),
    # The micro reproduction of issue 13 at GPU size (benchmarks/micro.py --scale gpu): the
    # whole chain, minutes on its own, so it gets a device call of its own (--parts micro).
    Part(
        "micro",
        "micro-gpu",
        "micro reproduction at GPU size (gpu)",
        60,
        "benchmarks.micro",
        ("--scale", "gpu", "--out", "{work}/micro", "--overwrite"),
        ("--scale", "smoke", "--out", "{work}/micro", "--overwrite"),
        own_call=True,
    ),
)  # fmt: skip
OWN_CALL = "skipped: runs in a device call of its own (--parts {name})"


def available(part: Part) -> bool:
    if part.module is None:
        return False
    try:
        return importlib.util.find_spec(part.module) is not None
    except ModuleNotFoundError:
        return False


def check_environment(smoke: bool) -> tuple[dict, str | None]:
    """What the machine has, and why the run cannot go on (None when it can)."""
    import torch

    from benchmarks.gpu.device import device_name, matmul_tflops, peak_bf16_tflops

    env: dict = {
        "machine": machine_description(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "smoke": smoke,
        "packages": {},
    }
    missing = []
    for name in (*CARRIED, "transformers", "accelerate", "huggingface_hub", "cv2", "pyarrow"):
        try:
            module = __import__(name)
            env["packages"][name] = {
                "version": getattr(module, "__version__", "?"),
                "file": getattr(module, "__file__", None),
            }
        except ImportError as error:
            missing.append(f"{name} ({error})")
    if not missing:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        first = subprocess.run([exe, "-version"], capture_output=True, text=True, check=False)
        env["ffmpeg"] = {"exe": exe, "version": (first.stdout.splitlines() or ["?"])[0]}
    smi = shutil.which("nvidia-smi")
    if smi:
        query = [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        result = subprocess.run(query, capture_output=True, text=True, check=False)
        env["nvidia_smi"] = result.stdout.strip() or result.stderr.strip()
    if torch.cuda.is_available():
        name = device_name()
        props = torch.cuda.get_device_properties(0)
        env["gpu"] = {
            "name": name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "peak_bf16": peak_bf16_tflops(name),
            "matmul_bf16_tflops": round(matmul_tflops(), 1),
        }
        torch.cuda.empty_cache()  # the parts get the whole card, less this process's context
    if missing:
        return env, (
            "missing packages: " + "; ".join(missing) + ". Carry them as wheels "
            "(make gpu-wheels; run.sh installs .gpu-wheels/)."
        )
    if not smoke and not torch.cuda.is_available():
        return env, (
            f"no GPU: torch {torch.__version__} (CUDA build {torch.version.cuda}) sees no CUDA "
            "device. This run measures GPU figures only; --smoke runs it on the CPU with tiny "
            "sizes."
        )
    return env, None


def run_part(part: Part, out: Path, work: Path, smoke: bool, seconds: float) -> dict:
    """Run one part for at most ``seconds``; its record (status, rows, markdown)."""
    results = out / f"{part.name}.json"
    results.unlink(missing_ok=True)
    args = [a.format(work=work) for a in (part.smoke_args if smoke else part.gpu_args)]
    command = [sys.executable, "-m", part.module, *args, "--json", str(results)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if smoke:  # tiny ops on a shared 2-core machine: more threads only wait on each other
        env["OMP_NUM_THREADS"] = "1"
    print(f"== part {part.name}: up to {seconds:.0f} s: {' '.join(command)}", flush=True)
    start = time.monotonic()
    # Its own process group (not session: the device tool ends what a command leaves running
    # unless it started a new session), so stopping it stops its children too.
    process = subprocess.Popen(command, env=env, process_group=0)
    try:
        code = process.wait(timeout=seconds)
        status = "ok" if code == 0 else f"failed (exit status {code})"
    except subprocess.TimeoutExpired:
        status = f"stopped at its time budget of {seconds:.0f} s"
    finally:  # also when this run is itself stopped (SIGTERM, Ctrl-C)
        if process.poll() is None:
            _stop(process)
    record = {"part": part.name, "status": status, "budget_s": round(seconds, 1)}
    record["seconds"] = round(time.monotonic() - start, 1)
    record["command"] = command
    if results.exists():
        record.update(json.loads(results.read_text()))
    results.with_name(results.name + ".partial").unlink(missing_ok=True)
    write_json(results, record)
    return record


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the part's process group (its children too), SIGKILL after 10 s."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _terminated(signum, frame) -> None:
    raise SystemExit(f"gpu run: stopped by signal {signum}")


def write_section(out: Path, part: Part, record: dict, command: str) -> None:
    """The part's section of ``out/benchmarks.md``: its rows so far, or why there are none."""
    ran = f" after {record['seconds']} s" if "seconds" in record else ""
    lines = [f"## {part.title}", "", f"Part `{part.name}` of `{command}`: {record['status']}{ran}."]
    if record.get("markdown"):
        lines += ["", record["markdown"]]
    else:
        lines += ["", "No figures: " + record["status"] + " (see run.log)."]
    update_section(out / "benchmarks.md", part.section, "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="results folder ($OUT)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--parts", help="comma-separated parts (default: all but the "
                        "own-call ones, which are reported as skipped)")  # fmt: skip
    parser.add_argument("--deadline", type=float, default=DEFAULT_DEADLINE,
                        help="seconds from the start by which every part has ended")  # fmt: skip
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    named = args.parts.split(",") if args.parts else None
    chosen = [p for p in PARTS if named is None or p.name in named]
    unknown = set(named or ()) - {p.name for p in PARTS}
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; known: {[p.name for p in PARTS]}")
    args.out.mkdir(parents=True, exist_ok=True)
    command = "bash benchmarks/gpu/run.sh" + (" --smoke" if args.smoke else "")
    signal.signal(signal.SIGTERM, _terminated)

    env, problem = check_environment(args.smoke)
    env["problem"] = problem
    write_json(args.out / "env.json", env)
    print(json.dumps(env, indent=1, default=str), flush=True)
    if problem:
        print(f"gpu run: stopping before any part: {problem}", file=sys.stderr, flush=True)
        return EXIT_NO_GPU

    work = args.work or Path(tempfile.mkdtemp(prefix="spatialdreamer-gpu-"))
    try:
        failed = run_parts(chosen, args, work, start, command, named=named)
    finally:
        if args.work is None:  # gigabytes of random weights
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


def run_parts(chosen: list[Part], args, work: Path, start: float, command: str, named=None) -> bool:
    """Run the chosen parts in order against the deadline; True when one did not end well.
    Own-call parts run only when ``named`` (the ``--parts`` list) names them."""
    own_call = [p for p in chosen if p.own_call and p.name not in (named or ())]
    runnable = [p for p in chosen if available(p) and p not in own_call]
    last = runnable[-1] if runnable else None
    spare, failed = 0.0, False
    for part in chosen:
        left = args.deadline - (time.monotonic() - start)
        seconds = left if (part is last or args.smoke) else min(part.budget + spare, left)
        if part in own_call:
            record = {"part": part.name, "status": OWN_CALL.format(name=part.name)}
        elif part not in runnable:
            record = {"part": part.name, "status": "skipped: not available"}
        elif seconds < 20:
            record = {"part": part.name, "status": "skipped: out of time"}
        else:
            began = time.monotonic()
            record = run_part(part, args.out, work, args.smoke, seconds)
            spare = max(0.0, seconds - (time.monotonic() - began))
            failed |= record["status"] != "ok"
        if "command" not in record:  # run_part wrote its own
            write_json(args.out / f"{part.name}.json", record)
        write_section(args.out, part, record, command)
        print(f"== part {part.name}: {record['status']}", flush=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())
