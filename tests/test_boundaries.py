"""Which parts may import which (docs/architecture.md): the lines the code must not cross."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEB_SIDE = {"django", "exports", "projects", "exports_project"}


def imported_modules(package: str) -> set[str]:
    """Every module the package's own files import, read from their source (migrations included)."""
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
    return found


def test_the_worker_side_imports_no_django_and_nothing_of_the_web_app():
    """Every module of modal_jobs, imported in a fresh interpreter: it runs in a bare Modal container."""
    modules = sorted(path.stem for path in (ROOT / "modal_jobs").glob("*.py") if path.stem != "__init__")
    program = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module('modal_jobs.' + name)\n"
        f"print(sorted({{name.split('.')[0] for name in sys.modules}} & {WEB_SIDE!r}))\n"
    )
    imported = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True, env={"PATH": ""}
    )
    assert len(modules) >= 10
    assert imported.stdout.strip() == "[]"


def test_projects_know_nothing_of_exports():
    """Exports build on projects; a project's pages reach working videos through the reverse relation only."""
    assert not {name for name in imported_modules("projects") if name.split(".")[0] == "exports"}
