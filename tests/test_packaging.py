"""The package declares what it imports: every third-party module imported anywhere under
``assistant/`` belongs to a distribution named in pyproject.toml, as a dependency or in an extra
(a plain ``pip install`` must not depend on what happens to be installed beside it)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]).lower()


def _imported_modules() -> dict[str, str]:
    """Top-level module -> the first file importing it."""
    found: dict[str, str] = {}
    for path in sorted((REPO / "assistant").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def test_every_imported_library_is_declared() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_name(r) for r in project["dependencies"]}
    declared |= {_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    distributions = packages_distributions()
    third_party = {m: f for m, f in _imported_modules().items() if m not in sys.stdlib_module_names and m != "assistant"}
    assert {"numpy", "chromadb", "fastapi", "plotly"} <= set(third_party)  # the scan sees real imports
    undeclared = {
        module: (where, sorted(distributions.get(module, [])))
        for module, where in third_party.items()
        if not {_name(d) for d in distributions.get(module, [])} & declared
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_the_extras_hold_what_the_core_does_not_need() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = {_name(r) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    for heavy in ("fastapi", "uvicorn", "plotly", "jinja2", "scikit-learn", "psycopg", "argon2-cffi"):
        assert heavy not in core, heavy
    assert {"fastapi", "uvicorn", "jinja2"} <= {_name(r) for r in extras["service"]}
    assert {"plotly", "jinja2", "scikit-learn"} <= {_name(r) for r in extras["evals"]}
    assert {_name(r) for r in extras["postgres"]} == {"psycopg"}
