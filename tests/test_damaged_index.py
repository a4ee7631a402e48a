"""Every file of an index, truncated or deleted in turn: the caller gets a safe answer, a handoff,
or a typed error that says how to repair (``assistant ingest --rebuild``), never another
exception; a damaged cache is rebuilt; ``assistant ask`` never silently rebuilds a damaged index."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from assistant import Assistant, AssistantError, HelpResponse, Settings
from tests.conftest import CORPUS, REPO

pytestmark = pytest.mark.integration


def index_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != "assistant.db")


def damage(path: Path, how: str) -> None:
    if how == "deleted":
        path.unlink()
    else:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("how", ["truncated", "deleted"])
def test_each_damaged_file_gives_an_answer_a_handoff_or_a_typed_error_that_says_how_to_repair(
    shipped_index: Path, tmp_path: Path, how: str
) -> None:
    outcomes: dict[str, str] = {}
    for name in index_files(shipped_index):
        copy = tmp_path / f"{how}-{len(outcomes)}"
        shutil.copytree(shipped_index, copy)
        damage(copy / name, how)
        assistant = Assistant(Settings(data_dir=copy, corpus_dir=CORPUS))
        try:
            response = assistant.answer("when do i get paid")
        except AssistantError as exc:
            assert "assistant ingest" in str(exc), (name, str(exc))
            outcomes[name] = type(exc).__name__
        else:
            assert isinstance(response, HelpResponse) and response.answer, name
            outcomes[name] = response.route.value
        shutil.rmtree(copy, ignore_errors=True)
    assert outcomes["manifest.json"] == "IndexNotReadyError"
    assert len(outcomes) >= 10


def test_a_damaged_classifier_cache_falls_back_to_the_shipped_weights_or_is_retrained(
    copy_of_shipped_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from assistant.guardrails import classifier

    [shipped] = classifier.SHIPPED_DIR.glob("screen-*.npz")
    cache = copy_of_shipped_index / "guardrails" / shipped.name
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(shipped.read_bytes()[:100])
    classifier._TRAINED.clear()  # the process keeps trained screens: make it read the files
    response = Assistant(Settings(data_dir=copy_of_shipped_index, corpus_dir=CORPUS)).answer("when do i get paid")
    assert response.route.value == "answer"  # the package's weights
    monkeypatch.setattr(classifier, "SHIPPED_DIR", tmp_path / "no-package-files")
    classifier._TRAINED.clear()
    response = Assistant(Settings(data_dir=copy_of_shipped_index, corpus_dir=CORPUS)).answer("when do i get paid")
    assert response.route.value == "answer"
    with np.load(cache) as stored:  # retrained and rewritten whole
        assert stored["weights"].shape[0] == len(stored["labels"])
    classifier._TRAINED.clear()


def test_ask_reports_a_damaged_manifest_instead_of_rebuilding(copy_of_shipped_index: Path) -> None:
    manifest = copy_of_shipped_index / "manifest.json"
    manifest.write_text(manifest.read_text(encoding="utf-8")[:40], encoding="utf-8")
    env = {"ASSISTANT_DATA_DIR": str(copy_of_shipped_index), "ASSISTANT_CORPUS_DIR": str(CORPUS), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "assistant.cli", "ask", "when do i get paid"], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120)
    assert done.returncode == 1
    assert "assistant ingest --rebuild" in done.stderr and "building it" not in done.stderr
