"""The prepared GPU run (benchmarks/gpu): its CPU smoke mode end to end, the no-GPU stop, the
time budgets, the wheel set and the copy of results into docs/benchmarks.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
import torch

from benchmarks.gpu import apply, run, wheels
from benchmarks.gpu.device import peak_bf16_tflops

ROOT = Path(__file__).resolve().parents[2]
RUN_SH = ROOT / "benchmarks" / "gpu" / "run.sh"


def run_sh(tmp_path: Path, *args: str, wheels_dir: Path | None = None, timeout: float = 600):
    env = {
        **os.environ,
        "OUT": str(tmp_path / "out"),
        "PYTHON": sys.executable,
        # never the developer's own .gpu-wheels: the run must use this venv's packages
        "GPU_WHEELS": str(wheels_dir or tmp_path / "no-wheels"),
        "GPU_SITE": str(tmp_path / "site"),
    }
    return subprocess.run(
        ["bash", str(RUN_SH), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def probe_wheel(folder: Path) -> Path:
    """A one-module wheel, standing in for the carried ones (.gpu-wheels needs the network)."""
    folder.mkdir()
    path = folder / "carried_probe-1.0-py3-none-any.whl"
    info = "carried_probe-1.0.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("carried_probe.py", "VALUE = 1\n")
        wheel.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: carried-probe\n"
                       "Version: 1.0\n")  # fmt: skip
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n"
                       "Tag: py3-none-any\n")  # fmt: skip
        wheel.writestr(f"{info}/RECORD", "")
    return path


def test_smoke_run_exercises_every_part(tmp_path: Path) -> None:
    """What CI runs of the GPU run: run.sh (with a wheel to install), the check and every part
    with tiny sizes on the CPU, each part's results in $OUT."""
    wheel_dir = probe_wheel(tmp_path / "wheels").parent
    start = time.monotonic()
    result = run_sh(tmp_path, "--smoke", "--work", str(tmp_path / "work"), wheels_dir=wheel_dir)
    seconds = time.monotonic() - start
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = tmp_path / "out"
    assert (tmp_path / "site" / "carried_probe.py").is_file()
    assert f"installed 1 wheels from {wheel_dir}" in (out / "run.log").read_text()
    # what the device tool brings back: at most 8 files, none left half-written
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        ["env.json", "dvg.json", "train.json", "convert.json", "micro.json", "benchmarks.md",
         "run.log"]
    ), names  # fmt: skip
    env = json.loads((out / "env.json").read_text())
    assert env["smoke"] is True and env["problem"] is None
    assert env["ffmpeg"]["version"].startswith("ffmpeg version")

    names = [part.name for part in run.PARTS]
    records = {name: json.loads((out / f"{name}.json").read_text()) for name in names}
    for name in ("dvg", "train", "convert"):
        assert records[name]["status"] == "ok", (name, records[name])
        assert records[name]["rows"], name
        assert records[name]["markdown"].count("\n|") >= 3, name  # header, rule, a row
    dvg = records["dvg"]["rows"][0]
    assert dvg["frames"] == 8 and dvg["samples"] == 1
    assert dvg["stages"]["depth"] > 0 and dvg["stages"]["inpaint"] > 0
    assert dvg["stages"]["flow"] > 0
    train = records["train"]["rows"]
    assert [(r["stage"], r["resolution"]) for r in train] == [(1, 64), (2, 64)]
    for row in train:
        assert row["mixed_precision"] == "bf16" and row["gradient_checkpointing"] is True
        assert row["samples_per_second"] > 0 and row["flops_per_sample"] > 0
    # stage 2 trains 8-frame clips: more work per sample than stage 1's single frames
    assert train[1]["flops_per_sample"] > train[0]["flops_per_sample"]
    convert = records["convert"]["rows"][0]
    assert convert["frames"] == 8 and 0 < convert["load_seconds"] < convert["seconds"]
    assert records["micro"]["status"] == run.OWN_CALL.format(name="micro")

    text = (out / "benchmarks.md").read_text()
    sections = apply.sections(text)
    assert list(sections) == [part.section for part in run.PARTS]
    assert "runs in a device call of its own (--parts micro)" in sections["micro-gpu"]
    assert "| 2 | 64 | 1 x 8 | bf16, on |" in sections["train-paper-gpu"]
    print(f"smoke run: {seconds:.0f} s")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the stop on a machine without one")
def test_without_a_gpu_the_run_stops_before_any_part(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    assert run.main(["--out", str(out)]) == run.EXIT_NO_GPU
    stderr = capsys.readouterr().err
    assert "no GPU" in stderr and "--smoke" in stderr
    env = json.loads((out / "env.json").read_text())
    assert env["cuda_available"] is False and env["problem"].startswith("no GPU")
    assert sorted(p.name for p in out.iterdir()) == ["env.json"]


FAKE_PART = textwrap.dedent(
    """
    import argparse, json, time
    from pathlib import Path
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--rows", type=int)
    args = parser.parse_args()
    rows = []
    for i in range(args.rows):
        rows.append({"row": i})
        args.json.write_text(json.dumps({"rows": rows, "markdown": f"| rows | {len(rows)} |"}))
    time.sleep(600)  # never finishes: the budget stops it
    """
)


def test_a_part_stopped_by_its_budget_keeps_its_finished_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fake_gpu_part.py").write_text(FAKE_PART)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    part = run.Part("fake", "fake-gpu", "fake part", 1, "fake_gpu_part", ("--rows", "2"), ())
    out = tmp_path / "out"
    out.mkdir()
    start = time.monotonic()
    record = run.run_part(part, out, tmp_path, smoke=False, seconds=3)
    assert time.monotonic() - start < 30  # stopped, not waited for
    assert record["status"] == "stopped at its time budget of 3 s"
    assert record["rows"] == [{"row": 0}, {"row": 1}]
    assert json.loads((out / "fake.json").read_text())["rows"] == record["rows"]
    run.write_section(out, part, record, "bash benchmarks/gpu/run.sh")
    body = apply.sections((out / "benchmarks.md").read_text())["fake-gpu"]
    assert "stopped at its time budget" in body and "| rows | 2 |" in body


@pytest.mark.parametrize("part", [p for p in run.PARTS if p.module], ids=lambda p: p.name)
def test_every_gpu_part_parses_its_gpu_arguments(part: run.Part, tmp_path: Path) -> None:
    """The GPU arguments never run here: at least the scripts must accept them."""
    module = __import__(part.module, fromlist=["parse_args"])
    args = [a.format(work=tmp_path) for a in part.gpu_args] + ["--json", str(tmp_path / "r")]
    parsed = module.parse_args(args)
    assert parsed.json == tmp_path / "r"


def test_every_convert_setting_is_a_valid_convert_config() -> None:
    from benchmarks.convert import SETTINGS
    from pipelines.convert import ConvertConfig

    for _, settings in SETTINGS.values():
        config = ConvertConfig(method="spatialdreamer", model="m", steps=25, **settings)
        assert config.to_dict().items() >= settings.items()


def test_gpu_budgets_fit_the_deadline() -> None:
    """The budgets of the parts that share the default run fit its deadline (with the check and
    wheel install, about 8 of the device's 15 minutes)."""
    shared = [p for p in run.PARTS if not p.own_call]
    assert sum(p.budget for p in shared) <= run.DEFAULT_DEADLINE <= 480
    assert all(p.budget >= 20 for p in run.PARTS)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NVIDIA H200", ("H200", 989.4)),
        ("NVIDIA H200 NVL", ("H200 NVL", 835.5)),
        ("NVIDIA H100 80GB HBM3", ("H100", 989.4)),
        ("NVIDIA H100 PCIe", ("H100 PCIe", 756.5)),
        ("NVIDIA A100-SXM4-80GB", ("A100", 312.0)),
        ("NVIDIA GeForce RTX 4090", None),
    ],
)
def test_peak_bf16_rate_from_the_device_name(name: str, expected) -> None:
    assert peak_bf16_tflops(name) == expected


def test_apply_replaces_only_the_runs_sections(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        "# Benchmarks\n\n<!-- a:start -->\nold a\n<!-- a:end -->\n\n"
        "<!-- b:start -->\nkeep b\n<!-- b:end -->\n"
    )
    results = tmp_path / "results.md"
    results.write_text(
        "<!-- a:start -->\nnew a\n| x |\n<!-- a:end -->\n\n<!-- c:start -->\nc\n<!-- c:end -->\n"
    )
    apply.main([str(results), "--to", str(docs)])
    assert apply.sections(docs.read_text()) == {"a": "new a\n| x |", "b": "keep b", "c": "c"}


def test_pinned_wheels_cover_what_the_gpu_image_lacks(tmp_path: Path) -> None:
    """Every dependency of the project (and of the carried wheels) is in the GPU image, carried,
    or known not to be needed there; a new dependency fails here until someone decides."""
    pins = wheels.read_pins()
    assert {"diffusers", "webdataset", "braceexpand", "imageio-ffmpeg"} <= set(pins)
    fake = []
    for name, version in pins.items():
        path = tmp_path / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as wheel:
            requires = "Requires-Dist: braceexpand\n" if name == "webdataset" else ""
            wheel.writestr(f"{name}-{version}.dist-info/METADATA", f"Name: {name}\n{requires}")
        fake.append(path)
    assert wheels.missing(pins, fake) == []
    with zipfile.ZipFile(fake[0], "w") as wheel:  # a carried wheel that needs something new
        metadata = "Requires-Dist: left-pad (>=1)\nRequires-Dist: pytest ; extra == 'test'\n"
        wheel.writestr("x-1.dist-info/METADATA", metadata)
    assert wheels.requirements(fake[0]) == ["left-pad"]
    assert wheels.missing(pins, fake) == [f"left-pad (needed by {fake[0].name})"]


def test_tree_size_counts_what_travels(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("ignored/\n")
    (tmp_path / "tracked.txt").write_bytes(b"a" * 1000)
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "big.bin").write_bytes(b"b" * 100_000)
    subprocess.run(["git", "-C", str(tmp_path), "add", "tracked.txt"], check=True)
    (tmp_path / "untracked.txt").write_bytes(b"c" * 500)
    assert wheels.tree_bytes(tmp_path) == 1000 + 500 + len("ignored/\n")
