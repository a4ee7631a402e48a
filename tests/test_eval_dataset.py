"""Dataset loading: bad cases are reported with file and line, the rest still load; gates."""

import json
from pathlib import Path

import pytest

from assistant.errors import ConfigurationError
from assistant.evals.dataset import SEALED_PERCENT, Split, drawn_split, load_datasets
from assistant.evals.gates import check_gates, load_thresholds

GOOD = {"id": "c1", "message": "when do tips show up", "expected_route": "answer", "tags": ["tips"]}


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_bad_cases_are_reported_and_the_rest_load(tmp_path: Path):
    path = _write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            GOOD,
            "{not json",
            {"id": "c2", "message": "hi", "expected_route": "teleport"},
            {"id": "c3", "message": "hi", "journey": {"stage": "at_dropoff", "colour": "red"}},
            {"id": "c1", "message": "duplicate id"},
            {"id": "c4", "message": "refund?", "expected_reasons": ["account_action"], "expected_route": "escalate"},
        ],
    )
    loaded = load_datasets([path])
    assert [c.id for c in loaded.cases] == ["c1", "c4"]
    assert loaded.cases[0].key == "mixed/c1"
    problems = {p.line: str(p) for p in loaded.problems}
    assert set(problems) == {2, 3, 4, 5}
    assert "mixed.jsonl:2: not JSON" in problems[2]
    assert "expected_route" in problems[3]
    assert "colour" in problems[4]
    assert "duplicate id 'c1'" in problems[5]


def test_yaml_datasets_folders_and_tag_filter(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(
        "- {id: y1, message: where do i park, tags: [pickup]}\n- {id: y2, message: when do tips show, tags: [tips]}\n", encoding="utf-8"
    )
    _write_jsonl(tmp_path / "b.jsonl", [GOOD])
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    loaded = load_datasets([tmp_path], tags=["tips"])
    assert sorted(c.key for c in loaded.cases) == ["a/y2", "b/c1"]
    assert load_datasets([tmp_path / "missing.jsonl"]).problems[0].reason == "no such dataset file"


def test_the_shipped_datasets_load_without_problems():
    loaded = load_datasets([Path(__file__).parent.parent / "evals" / "datasets"])
    assert loaded.problems == []
    assert len(loaded.cases) >= 250


def test_every_case_is_in_one_split_stated_or_drawn_stably(tmp_path: Path):
    rows = [{**GOOD, "id": f"c{i}"} for i in range(200)]
    rows[0] = {**GOOD, "id": "c0", "split": "sealed"}
    rows[1] = {**GOOD, "id": "c1", "split": "tuning"}
    path = _write_jsonl(tmp_path / "set.jsonl", rows)
    cases = load_datasets([path]).cases
    assert cases[0].part is Split.SEALED and cases[1].part is Split.TUNING
    assert all(c.part is drawn_split("set", c.id) for c in cases[2:])
    sealed = sum(c.part is Split.SEALED for c in cases[2:])
    assert abs(sealed / 198 - SEALED_PERCENT / 100) < 0.1, "about the configured share is sealed"
    tuning = load_datasets([path], split=Split.TUNING).cases
    assert {c.id for c in tuning} == {c.id for c in cases if c.part is Split.TUNING}
    assert load_datasets([_write_jsonl(tmp_path / "bad.jsonl", [{**GOOD, "split": "secret"}])]).problems


def test_the_held_out_dataset_is_half_sealed_and_covers_what_the_issue_asks():
    cases = load_datasets([Path(__file__).parent.parent / "evals" / "datasets" / "heldout.jsonl"]).cases
    answerable = [c for c in cases if "answerable" in c.tags]
    assert len(answerable) >= 200 and all(c.must_include for c in answerable)
    assert sum(c.unanswerable for c in cases) >= 40
    assert sum("non-english" in c.tags for c in cases) >= 30
    sealed = sum(c.part is Split.SEALED for c in cases)
    assert all(c.split is not None for c in cases) and abs(sealed - len(cases) / 2) <= 2


def test_gates_pass_fail_and_missing(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text(
        "overall:\n  route.accuracy: {min: 0.8}\n  latency.p95_ms: {max: 50}\n  safety.recall: {min: 1.0}\n"
        "datasets:\n  retrieval: {retrieval.recall@5: {min: 0.9}}\n  absent: {route.accuracy: {min: 1}}\n"
        "splits:\n  heldout/sealed: {answer.must_include: {min: 0.9}}\n",
        encoding="utf-8",
    )
    summary = {
        "overall": {"route.accuracy": 0.85, "latency.p95_ms": 61.0, "safety.recall": None},
        "by_dataset": {"retrieval": {"retrieval.recall@5": 0.95}},
        "by_split": {"heldout/sealed": {"answer.must_include": 0.7}},
    }
    verdicts = {(v.scope, v.metric): v.passed for v in check_gates(summary, load_thresholds(path))}
    assert verdicts == {
        ("overall", "route.accuracy"): True,
        ("overall", "latency.p95_ms"): False,
        ("overall", "safety.recall"): False,  # a metric the run did not produce never passes
        ("heldout/sealed", "answer.must_include"): False,
        ("retrieval", "retrieval.recall@5"): True,
    }
    path.write_text("overall:\n  route.accuracy: {}\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"t\.yaml"):
        load_thresholds(path)
