"""The backend modules import each other without a cycle (a static walk of their imports)."""

from __future__ import annotations

import ast
from pathlib import Path

import dvg.backends

PACKAGE = "dvg.backends"


def _imports(path: Path) -> set[str]:
    """Sibling modules of dvg.backends that ``path`` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            found.add(node.module.removeprefix(PACKAGE + ".").split(".")[0])
    return found


def test_backend_modules_form_no_import_cycle() -> None:
    folder = Path(dvg.backends.__file__).parent
    graph = {p.stem: _imports(p) for p in folder.glob("*.py") if p.stem != "__init__"}
    assert graph["weights"] <= {"registry"}, "weights.py must stay a leaf the backends import"

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        for child in graph.get(module, ()):
            visit(child, (*path, module))

    for module in graph:
        visit(module, ())
