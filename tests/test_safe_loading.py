"""Grep-level guard: no code of the project unpickles a file made elsewhere.

Fails on ``torch.load(`` without ``weights_only=True``, ``np.load(`` without an explicit
``allow_pickle=False`` (or with ``allow_pickle=True``), ``pickle.load``/``loads``, ``yaml.load(``
without a safe loader, and other unpickling loaders; and requires every file that still loads
arrays or modules to be listed in docs/design.md with why it is safe.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("dvg", "trainer", "pipelines", "evaluation")
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}
# Text that must never appear in the packages, whatever the call around it.
FORBIDDEN_TEXT = {
    r"allow_pickle\s*=\s*True": "allow_pickle=True unpickles arrays of Python objects",
    r"weights_only\s*=\s*False": "weights_only=False unpickles arbitrary objects",
    r"\bpickle\.(load|loads|Unpickler)\b": "pickle runs code from the file",
    r"\b(cPickle|dill|cloudpickle|joblib)\.load": "a pickle-based loader",
    r"\bread_pickle\b": "pandas.read_pickle unpickles",
    r"\byaml\.(unsafe_load|full_load|load_all)\b": "a YAML loader that builds Python objects",
}


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_constant(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def unsafe_loads(source: str, where: str) -> list[str]:
    """Every unsafe load in ``source`` as ``"where:line: problem"``."""
    problems = []
    for pattern, why in FORBIDDEN_TEXT.items():
        for match in re.finditer(pattern, source):
            line = source.count("\n", 0, match.start()) + 1
            problems.append(f"{where}:{line}: {match.group(0)}: {why}")
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name, line = _dotted(node.func), f"{where}:{node.lineno}"
        if name == "torch.load" and not _is_constant(_keyword(node, "weights_only"), True):
            problems.append(f"{line}: torch.load without weights_only=True")
        if name in ("np.load", "numpy.load") and not _is_constant(
            _keyword(node, "allow_pickle"), False
        ):
            problems.append(f"{line}: np.load without an explicit allow_pickle=False")
        if name == "yaml.load":
            loader = _keyword(node, "Loader")
            if loader is None and len(node.args) > 1:
                loader = node.args[1]
            if loader is None or _dotted(loader).rsplit(".", 1)[-1] not in SAFE_YAML_LOADERS:
                problems.append(f"{line}: yaml.load without a safe Loader")
    return problems


def load_sites() -> dict[str, list[str]]:
    """Files of the packages calling a loader of arrays or modules: torch.load, torch.jit.load,
    np.load, safetensors; each must be justified in docs/design.md."""
    loaders = {"torch.load", "torch.jit.load", "np.load", "numpy.load", "load_file", "safe_open"}
    sites: dict[str, list[str]] = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _dotted(node.func) in loaders:
                relative = path.relative_to(REPO).as_posix()
                sites.setdefault(relative, []).append(_dotted(node.func))
    return sites


def test_no_package_code_unpickles():
    problems = [p for path in _sources() for p in unsafe_loads(path.read_text(), str(path))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "code",
    [
        "torch.load(path)",
        "torch.load(path, weights_only=False)",
        "torch.load(\n    path,\n    map_location='cpu',\n)",
        "np.load(path)",
        "numpy.load(path, allow_pickle=True)",
        "np.load(path, **{'allow_pickle': True})",
        "pickle.load(handle)",
        "data = pickle.loads(blob)",
        "yaml.load(text)",
        "yaml.load(text, Loader=yaml.Loader)",
        "yaml.full_load(text)",
        "joblib.load(path)",
    ],
)
def test_the_guard_catches_each_unsafe_form(code):
    assert unsafe_loads(code, "x.py")


@pytest.mark.parametrize(
    "code",
    [
        "torch.load(path, map_location='cpu', weights_only=True)",
        "np.load(path, mmap_mode='r', allow_pickle=False)",
        "yaml.load(text, Loader=yaml.SafeLoader)",
        "yaml.safe_load(text)",
        "json.loads(text)",
    ],
)
def test_the_guard_passes_safe_forms(code):
    assert not unsafe_loads(code, "x.py")


def test_every_load_site_is_listed_in_the_design_notes():
    design = (REPO / "docs" / "design.md").read_text()
    missing = [path for path in load_sites() if f"`{path}`" not in design]
    assert not missing, f"list these loads in docs/design.md (Loading files): {missing}"
