"""`make gpu-wheels`: download the wheels the GPU machine lacks and check they fit the carry limit.

    python3 -m benchmarks.gpu.wheels [--dest .gpu-wheels]

Downloads the pins of benchmarks/gpu/wheels.txt for the GPU machine's Python (3.12, manylinux
x86_64, binary wheels only, no dependencies) into ``--dest``, removes wheels there that are not
pinned (two versions of one package stop the install there), checks that every runtime
dependency of the project and of the carried wheels is either in the GPU image or carried, and
prints the total against the device tool's 64 MiB limit on the working tree plus carried paths.
Exits 1 when something is missing or the total does not fit. Needs only Python and pip (no
torch), so it runs on a fresh clone.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
PINS = Path(__file__).with_name("wheels.txt")
CARRY_LIMIT = 64 * 2**20
PYTHON_VERSION = "3.12"
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
# Among what the project and the carried wheels need: what the GPU image already has (its
# package list in the device tool's KINDS.md, read 2026-11-17).
IMAGE_HAS = frozenset(
    """torch numpy opencv-python-headless typer rich pillow pyarrow transformers safetensors
    accelerate huggingface-hub tensorboard matplotlib filelock regex requests pyyaml packaging
    scikit-image pytest numba""".split()
)
# Needed on paper but not by the GPU run.
NOT_NEEDED = {
    "ray": "the GPU run uses the local executor",
    "importlib-metadata": "diffusers imports it only on Python < 3.8",
    "ruff": "a linter",
}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path = PINS) -> dict[str, str]:
    """{normalised name: version} of ``name==version`` lines (comments and blanks skipped)."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not version:
            raise ValueError(f"{path}: {line!r} is not name==version")
        pins[normalise(name)] = version.strip()
    return pins


def wheel_name(path: Path) -> str:
    """Normalised distribution name of a wheel file (``name-version-...whl``)."""
    return normalise(path.name.split("-", 1)[0])


def download(pins: dict[str, str], dest: Path) -> list[Path]:
    """Download the pinned wheels into ``dest``; drop unpinned or other-version wheels there."""
    dest.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--python-version", PYTHON_VERSION, "--implementation", "cp", "-d", str(dest)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    command += [f"{name}=={version}" for name, version in pins.items()]
    subprocess.run(command, check=True)
    kept = []
    for wheel in sorted(dest.glob("*.whl")):
        version = wheel.name.split("-")[1]
        if pins.get(wheel_name(wheel)) == version:
            kept.append(wheel)
        else:
            print(f"removing {wheel.name}: not pinned in {PINS.name}")
            wheel.unlink()
    return kept


def requirements(wheel: Path) -> list[str]:
    """Normalised names of a wheel's Requires-Dist lines, without extras-only ones."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
    names = []
    for line in text.splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            names.append(normalise(re.split(r"[\s;<>=!~\[(]", line.split(":", 1)[1].strip())[0]))
    return names


def project_dependencies(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    specs = list(project["dependencies"]) + list(project["optional-dependencies"]["dev"])
    return [normalise(re.split(r"[\s;<>=!~\[]", spec)[0]) for spec in specs]


def missing(pins: dict[str, str], wheels: list[Path]) -> list[str]:
    """What the GPU run needs that is neither in the image, carried, nor known to be unneeded."""
    problems = []
    needed = [("pyproject.toml", name) for name in project_dependencies()]
    needed += [(wheel.name, name) for wheel in wheels for name in requirements(wheel)]
    for source, name in needed:
        if name not in IMAGE_HAS and name not in pins and name not in NOT_NEEDED:
            problems.append(f"{name} (needed by {source})")
    for name in pins:
        if not any(wheel_name(w) == name for w in wheels):
            problems.append(f"{name} (pinned, but no wheel was downloaded)")
    return problems


def tree_bytes(root: Path = ROOT) -> int:
    """Bytes of the working tree that travels: tracked and untracked-not-ignored files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    files = (root / name for name in listed.split("\0") if name)
    return sum(f.stat().st_size for f in files if f.is_file() and not f.is_symlink())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=ROOT / ".gpu-wheels")
    args = parser.parse_args(argv)
    pins = read_pins()
    wheels = download(pins, args.dest)
    mib = 2**20
    print(f"\nwheels in {args.dest} for Python {PYTHON_VERSION} manylinux x86_64:")
    for wheel in wheels:
        print(f"  {wheel.stat().st_size / mib:6.1f} MiB  {wheel.name}")
    carried = sum(w.stat().st_size for w in wheels)
    tree = tree_bytes()
    total = carried + tree
    print(f"  {carried / mib:6.1f} MiB  wheels in all")
    print(f"  {tree / mib:6.1f} MiB  working tree (tracked and untracked-not-ignored files)")
    print(f"  {total / mib:6.1f} MiB  together, of the {CARRY_LIMIT / mib:.0f} MiB carry limit")
    problems = missing(pins, wheels)
    for problem in problems:
        print(f"missing on the GPU machine: {problem}")
    if total > CARRY_LIMIT:
        print(f"over the carry limit by {(total - CARRY_LIMIT) / mib:.1f} MiB")
    return 1 if problems or total > CARRY_LIMIT else 0


if __name__ == "__main__":
    sys.exit(main())
