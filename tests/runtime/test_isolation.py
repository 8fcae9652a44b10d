"""The runtime ships alone in a bundle: it imports nothing of the rest of modelport."""

from __future__ import annotations

import ast
from pathlib import Path

import modelport.runtime

RUNTIME = Path(modelport.runtime.__file__).parent
SOURCES = sorted(RUNTIME.rglob("*.py"))
# run_inference.py imports the bundle's copy of the package when it runs as a script
ALLOWED = {"run_inference.py": {"modelport_runtime.cli"}}


def absolute_imports(path: Path) -> tuple[set[str], list[int]]:
    """Modules imported by absolute name, and the levels of relative imports."""
    names, levels = set(), []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                levels.append(node.level)
            else:
                names.add(node.module or "")
    return names, levels


def ours(name: str) -> bool:
    root = name.split(".")[0]
    return root in ("modelport", "modelport_runtime")


def test_the_runtime_has_sources():
    assert {"config.py", "batching.py", "protocol.py", "run_inference.py"} <= {
        p.name for p in SOURCES
    }


def test_the_runtime_imports_nothing_of_modelport():
    problems = {}
    for path in SOURCES:
        names, levels = absolute_imports(path)
        found = {name for name in names if ours(name)}
        if found != ALLOWED.get(path.name, set()):
            problems[path.name] = sorted(found)
        if any(level > 1 for level in levels):  # `from ..x import` leaves the package
            problems[path.name] = [f"relative import of level {max(levels)}"]
    assert problems == {}


def test_the_check_sees_a_forbidden_import(tmp_path):
    """The helper above catches each way of importing modelport."""
    for source in (
        "import modelport.core.errors",
        "from modelport.core import errors",
        "from modelport import core",
        "import modelport",
        "def f():\n    from modelport.packaging import bundle",
    ):
        path = tmp_path / "x.py"
        path.write_text(source)
        assert any(ours(name) for name in absolute_imports(path)[0]), source
    path.write_text("from ..core import errors")
    assert absolute_imports(path)[1] == [2]
