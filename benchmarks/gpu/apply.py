"""Copy the sections of a GPU run's benchmarks.md into docs/benchmarks.md.

    python -m benchmarks.gpu.apply RESULTS/benchmarks.md [--to docs/benchmarks.md]

Each ``<!-- name:start -->`` ... ``<!-- name:end -->`` section of the run's file replaces the
section of that name in ``--to`` (appended when missing); the rest of ``--to`` is untouched.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from benchmarks._report import update_section

_SECTION = re.compile(r"<!-- ([\w.-]+):start -->\n(.*?)\n<!-- \1:end -->", re.DOTALL)


def sections(text: str) -> dict[str, str]:
    """{name: body} of the marked sections of ``text``, in order."""
    return {match.group(1): match.group(2) for match in _SECTION.finditer(text)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="benchmarks.md written by the GPU run")
    parser.add_argument("--to", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args(argv)
    found = sections(args.results.read_text())
    if not found:
        raise SystemExit(f"{args.results} has no marked sections")
    for name, body in found.items():
        update_section(args.to, name, body)
        print(f"{args.to}: replaced section {name}")


if __name__ == "__main__":
    main()
