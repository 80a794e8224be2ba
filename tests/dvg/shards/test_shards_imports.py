"""dvg.shards stays light: the trainer imports it without torch or the data engine's models."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import dvg.shards

FORBIDDEN = ("torch", "torchvision", "webdataset", "pyarrow", "ray", "dvg.models", "dvg.geometry")
ALLOWED_THIRD_PARTY = {"numpy", "cv2"}


def test_import_does_not_load_heavy_modules():
    code = "import json, sys, dvg.shards; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(result.stdout))
    assert "dvg.shards.reader" in loaded  # the check would be vacuous otherwise
    heavy = sorted(m for m in loaded for f in FORBIDDEN if m == f or m.startswith(f + "."))
    assert heavy == []


def test_source_imports_only_stdlib_numpy_cv2():
    package_dir = Path(dvg.shards.__file__).parent
    for path in sorted(package_dir.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                ok = (
                    top in sys.stdlib_module_names
                    or top in ALLOWED_THIRD_PARTY
                    or name.startswith("dvg.shards")
                )
                assert ok, f"{path.name} imports {name}"
