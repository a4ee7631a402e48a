"""The core install works without the optional extras, and a feature whose extra is missing says
which extra to install.

A real subprocess with the extras' modules made unimportable (a meta-path finder that raises
``ModuleNotFoundError`` for them, as Python does when a package is not installed), so no module
the core path imports can come from ``[service]``, ``[evals]`` or ``[postgres]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from assistant._optional import missing, require
from assistant.errors import ConfigurationError, MissingDependencyError

REPO = Path(__file__).resolve().parent.parent
#: The import names each extra installs (pyproject.toml's optional-dependencies).
EXTRAS = {
    "service": ["fastapi", "starlette", "uvicorn", "prometheus_client", "argon2", "multipart", "python_multipart", "jinja2"],
    "evals": ["plotly", "jinja2", "sklearn"],
    "postgres": ["psycopg"],
}
EVERY_EXTRA = sorted({m for modules in EXTRAS.values() for m in modules})

BLOCKER = """
import importlib.abc, sys
BLOCKED = set({blocked!r})
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
"""


def without(blocked: list[str], code: str, data_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where ``blocked`` modules cannot be imported."""
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(data_dir), "ASSISTANT_CORPUS_DIR": str(REPO / "corpus")}
    program = BLOCKER.format(blocked=sorted(blocked)) + code
    return subprocess.run([sys.executable, "-c", program, *argv], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def printed_json(done: subprocess.CompletedProcess[str]) -> Any:
    """The JSON object a successful subprocess printed last."""
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


CLI = "import sys; sys.argv = ['assistant', *sys.argv[1:]]\nfrom assistant.cli import main\nmain()\n"


def test_require_names_the_extra_of_a_missing_module() -> None:
    with pytest.raises(MissingDependencyError) as caught:
        require("a test feature", "service", "json", "no_such_module_for_this_test")
    error = caught.value
    assert isinstance(error, ConfigurationError)
    assert (error.module, error.extra) == ("no_such_module_for_this_test", "service")
    assert "pip install 'driver-help-assistant[service]'" in str(error)


def test_a_broken_install_is_not_relabelled_as_a_missing_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the package exists, but one of its own imports does not: that is a broken install, not a missing extra
    (tmp_path / "halfinstalled").mkdir()
    (tmp_path / "halfinstalled" / "__init__.py").write_text("import no_such_inner_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as caught:
        require("a test feature", "service", "halfinstalled")
    assert caught.type is ModuleNotFoundError and caught.value.name == "no_such_inner_dependency"
    unknown = ModuleNotFoundError("No module named 'elsewhere'", name="elsewhere")
    assert missing("a feature", unknown) is unknown
    known = missing("the eval report", ModuleNotFoundError("No module named 'plotly.io'", name="plotly.io"))
    assert isinstance(known, MissingDependencyError) and (known.module, known.extra) == ("plotly", "evals")


@pytest.mark.integration
def test_the_core_install_answers_without_any_extra(copy_of_shipped_index: Path) -> None:
    library = (
        "import json\nfrom assistant import Assistant, HelpRequest, JourneyContext\n"
        "assistant = Assistant.from_settings()\n"
        "response = assistant.answer(HelpRequest(message='when do i get paid', journey=JourneyContext(market='us-ca')))\n"
        "print(json.dumps({'route': response.route.value, 'docs': [c.doc_id for c in response.citations]}))\n"
    )
    result = printed_json(without(EVERY_EXTRA, library, copy_of_shipped_index))
    assert result["route"] == "answer" and any(d.startswith("payout-schedule") for d in result["docs"])

    asked = without(EVERY_EXTRA, CLI, copy_of_shipped_index, "ask", "customer not answering the door", "--json")
    assert printed_json(asked)["route"] in ("answer", "escalate")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("blocked", "argv", "extra"),
    [
        (EXTRAS["service"], ["serve", "--port", "1"], "service"),
        (["fastapi", "starlette"], ["serve", "--port", "1"], "service"),  # uvicorn comes with chromadb
        (EXTRAS["service"], ["users", "list"], "service"),
        (EXTRAS["evals"], ["eval", "run", "--dataset", "retrieval", "--split", "tuning", "--quiet"], "evals"),
    ],
)
def test_a_command_without_its_extra_exits_2_naming_it(
    blocked: list[str], argv: list[str], extra: str, copy_of_shipped_index: Path, tmp_path: Path
) -> None:
    done = without(blocked, CLI, copy_of_shipped_index, *argv)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"pip install 'driver-help-assistant[{extra}]'" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
    assert "serving on" not in done.stderr


@pytest.mark.integration
def test_the_library_raises_a_typed_error_for_each_missing_extra(tmp_path: Path) -> None:
    code = (
        "import assistant\nfrom assistant.errors import MissingDependencyError\n"
        "from assistant.store.database import make_engine\n"
        "out = {}\n"
        "for name, attempt in [('service', lambda: assistant.create_app), ('console', lambda: assistant.ConsoleUsers),\n"
        "                      ('report', lambda: __import__('assistant.evals.report')),\n"
        "                      ('postgres', lambda: make_engine('postgresql://driver@127.0.0.1:1/none'))]:\n"
        "    try:\n        attempt()\n        out[name] = None\n"
        "    except MissingDependencyError as exc:\n        out[name] = [exc.module, exc.extra]\n"
        "import json\nprint(json.dumps(out))\n"
    )
    found = printed_json(without(EVERY_EXTRA, code, tmp_path))
    assert found["service"][1] == "service" and found["console"] == ["argon2", "service"]
    assert found["report"][1] == "evals" and found["postgres"] == ["psycopg", "postgres"]


@pytest.mark.integration
def test_the_demo_runs_on_the_core_install_and_says_what_the_console_needs(copy_of_shipped_index: Path) -> None:
    done = without(EXTRAS["service"] + EXTRAS["postgres"], CLI, copy_of_shipped_index, "demo", "--quiet")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "conversations list" in text and "pip install 'driver-help-assistant[service]'" in text
    assert "sign in as" not in text
