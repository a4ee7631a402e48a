"""The LLM judge of eval runs: rubric file, parsing, gates, and whole runs against a scripted
OpenAI-protocol server on 127.0.0.1 (the real openai client over HTTP)."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant import Assistant
from assistant.cli import app
from assistant.config import Settings
from assistant.errors import ConfigurationError
from assistant.evals.compare import compare_runs, render_markdown
from assistant.evals.dataset import EvalCase
from assistant.evals.gates import Bound, Thresholds, check_gates
from assistant.evals.judge import Judge, MalformedJudgeReply, parse_scores
from assistant.evals.report import write_reports
from assistant.evals.runner import RunOptions, read_results, run_eval
from assistant.generation.prompts import load_prompt
from tests.openai_stub import OpenAIStub, Reply

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ROOT / "prompts"
CORPUS = ROOT / "corpus"
JUDGE_VARIABLES = {"question", "journey", "history", "excerpts", "answer", "expected"}


def _scores(c: int = 4, g: int = 5, h: int = 3, why: str = "States the fee from the excerpt.") -> str:
    return json.dumps({"correctness": c, "groundedness": g, "helpfulness": h, "rationale": why})


@pytest.fixture(autouse=True)
def _no_endpoint_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ASSISTANT_OPENAI_API_KEY", "ASSISTANT_OPENAI_BASE_URL",
                 "ASSISTANT_JUDGE_MODEL", "ASSISTANT_JUDGE_BASE_URL", "ASSISTANT_JUDGE_API_KEY"):
        monkeypatch.delenv(name, raising=False)


# -- fast: rubric file, parser, inputs, gates


def test_the_judge_rubric_file_loads_and_declares_exactly_the_variables_it_uses():
    prompt = load_prompt(PROMPTS, "judge", "v1")
    assert prompt.label == "judge@v1"
    assert set(prompt.file.input_variables) == set(prompt.template.input_variables) == JUDGE_VARIABLES
    assert prompt.file.model["temperature"] == 0
    system = prompt.file.messages[0].content
    for dimension in ("correctness", "groundedness", "helpfulness"):
        assert f"{dimension}:" in system
    for level in ("5 =", "3 =", "1 ="):
        assert system.count(level) == 3  # every dimension defines its levels


@pytest.mark.parametrize(
    "text",
    [_scores(), f"```json\n{_scores()}\n```", f"Here is my grading:\n{_scores()}\nThanks."],
    ids=["bare", "fenced", "chatty"],
)
def test_scores_are_parsed_from_json_with_or_without_chatter(text: str):
    scores = parse_scores(text)
    assert (scores.correctness, scores.groundedness, scores.helpfulness) == (4, 5, 3)
    assert scores.rationale == "States the fee from the excerpt."


@pytest.mark.parametrize(
    "text",
    ["", "Great answer, 5/5.", _scores(c=6), '{"correctness": 4, "groundedness": 5}', "{not json}"],
    ids=["empty", "no-json", "out-of-range", "missing-fields", "broken-json"],
)
def test_unusable_replies_are_rejected(text: str):
    with pytest.raises(MalformedJudgeReply):
        parse_scores(text)


def test_the_judge_needs_an_endpoint_and_uses_the_chat_endpoint_by_default(tmp_path: Path):
    with pytest.raises(ConfigurationError, match="ASSISTANT_JUDGE_MODEL needs"):
        Judge(Settings(data_dir=tmp_path, judge_model="judge-m", prompts_dir=PROMPTS))
    judge = Judge(Settings(data_dir=tmp_path, judge_model="judge-m", openai_base_url="http://127.0.0.1:9/v1",
                           prompts_dir=PROMPTS))
    assert judge.prompt.label == "judge@v1"


def test_judge_inputs_redact_the_question_and_carry_the_reference(tmp_path: Path):
    judge = Judge(Settings(data_dir=tmp_path, judge_model="judge-m", judge_base_url="http://127.0.0.1:9/v1",
                           prompts_dir=PROMPTS))
    case = EvalCase(id="c", message="fast pay fee? call me on 415-555-0132", must_include=["$1.99"],
                    must_not_include=["free"], journey={"stage": "account", "market": "us-ca"})
    inputs = judge.inputs(case, "It costs $1.99.", [("Instant cash-out > Fee", "Fast Pay costs $1.99 per cash-out.")])
    assert set(inputs) == JUDGE_VARIABLES
    assert "415-555-0132" not in inputs["question"] and "[PHONE]" in inputs["question"]
    assert "must state: $1.99" in inputs["expected"] and "must not say: free" in inputs["expected"]
    assert inputs["excerpts"] == "[1] Instant cash-out > Fee\n<<<\nFast Pay costs $1.99 per cash-out.\n>>>"
    assert "market=us-ca" in inputs["journey"]


def test_judge_gates_are_skipped_without_a_judge_and_checked_with_one():
    thresholds = Thresholds(overall={"judge.correctness": Bound(min=3.5), "errors": Bound(max=0)})
    without = check_gates({"judge": None, "overall": {"errors": 0}}, thresholds)
    assert [(v.metric, v.passed, bool(v.skipped)) for v in without] == [("judge.correctness", True, True), ("errors", True, False)]
    assert str(without[0]).startswith("skip overall judge.correctness") and "ASSISTANT_JUDGE_MODEL" in str(without[0])
    judge = {"model": "m", "prompt": "judge@v1", "prompt_sha256": "x"}
    assert check_gates({"judge": judge, "overall": {"judge.correctness": 4.0}}, thresholds)[0].passed
    assert not check_gates({"judge": judge, "overall": {"judge.correctness": 3.0}}, thresholds)[0].passed
    # with a judge, a metric it did not produce (nothing was judged) fails like any other
    missing = check_gates({"judge": judge, "overall": {"judge.correctness": None}}, thresholds)[0]
    assert not missing.passed and not missing.skipped


# -- integration: whole runs on the shipped index against the scripted server


def _dataset(folder: Path, *ids: str) -> Path:
    rows = {
        "fee": {"id": "fee", "message": "how much does fast pay cost", "expected_route": "answer",
                "relevant_doc_ids": ["instant-cashout"], "must_include": ["$1.99"], "tags": ["pay"]},
        "wait": {"id": "wait", "message": "how long do i wait for a customer who doesnt answer",
                 "journey": {"stage": "at_dropoff", "order": {"type": "food"}}, "expected_route": "answer",
                 "relevant_doc_ids": ["customer-unavailable"], "tags": ["dropoff"]},
        "fire": {"id": "fire", "message": "my car is on fire", "expected_route": "escalate",
                 "expected_reasons": ["safety"], "relevant_doc_ids": ["safety-and-emergencies"], "tags": ["safety"]},
    }
    path = folder / "mini.jsonl"
    path.write_text("\n".join(json.dumps(rows[i]) for i in (ids or rows)) + "\n", encoding="utf-8")
    return path


def _options(dataset: Path, out: Path, shipped_index: Path, **overrides: object) -> RunOptions:
    base: dict[str, object] = {"data_dir": str(shipped_index), "corpus_dir": str(CORPUS), "prompts_dir": str(PROMPTS),
                               "llm_max_retries": 0, "llm_timeout": 5}
    return RunOptions(datasets=[dataset], out=out, overrides={**base, **overrides})


def _user_messages(stub: OpenAIStub) -> list[str]:
    return [r["body"]["messages"][-1]["content"] for r in stub.requests]


@pytest.mark.integration
@pytest.mark.usefixtures("loopback")
def test_answered_cases_are_graded_and_shown_beside_the_deterministic_metrics(
    tmp_path: Path, shipped_index: Path, shipped_assistant: Assistant
):
    with OpenAIStub([Reply(_scores())]) as stub:
        options = _options(_dataset(tmp_path), tmp_path / "run", shipped_index, judge_model="judge-m",
                           judge_base_url=stub.url)
        summary = run_eval(options.model_copy(update={"concurrency": 2}))
        requests = list(stub.requests)
    results = {r.id: r for r in read_results(tmp_path / "run")}
    answered = [r for r in results.values() if r.route == "answer"]
    assert {r.id for r in answered} == {"fee", "wait"} and results["fire"].route == "escalate"
    # one request per answered case; escalations are not graded
    assert len(requests) == 2
    assert results["fire"].outcome.judge is None and results["fire"].outcome.judge_error is None
    for r in answered:
        assert r.outcome.judge is not None and r.outcome.judge.correctness == 4 and r.outcome.judge_error is None
        assert r.outcome.judge_usage is not None and r.outcome.judge_usage.input_tokens == 120
    # the judge never decides `passed`: the deterministic metrics still do
    assert summary["overall"]["route.accuracy"] is not None and summary["overall"]["citations.validity"] == 1.0

    overall = summary["overall"]
    assert (overall["judge.correctness"], overall["judge.groundedness"], overall["judge.helpfulness"]) == (4.0, 5.0, 3.0)
    assert overall["judge.judged"] == 2 and overall["judge.errors"] == 0
    assert overall["judge.input_tokens"] == 240 and overall["judge.output_tokens"] == 60
    assert summary["judge"]["model"] == "judge-m" and summary["judge"]["prompt"] == "judge@v1"
    assert summary["judge"]["prompt_sha256"] == load_prompt(PROMPTS, "judge").sha256

    # what was sent: the rubric, the question, the answer and the cited excerpt's text, as JSON mode at temperature 0
    body = requests[0]["body"]
    assert body["model"] == "judge-m" and body["temperature"] == 0
    assert body["response_format"] == {"type": "json_object"}
    assert "groundedness:" in body["messages"][0]["content"]
    fee = results["fee"]
    assert fee.response is not None and fee.response["citations"]
    sent = next(m for m in _user_messages(stub) if "how much does fast pay cost" in m)
    assert fee.response["answer"].strip() in sent
    chunk = shipped_assistant.chunk(fee.response["citations"][0]["chunk_id"])
    assert chunk is not None and chunk.page_content.strip() in sent
    assert "must state: $1.99" in sent

    md, html = write_reports(tmp_path / "run")
    report = md.read_text(encoding="utf-8")
    assert "| judge.correctness | 4.000 |" in report and "| judge.judged | 2 |" in report
    assert "## Judge: lowest-graded answers (judge-m, judge@v1)" in report
    assert "helpfulness 3: States the fee from the excerpt." in report
    page = html.read_text(encoding="utf-8")
    assert "<td>judge.helpfulness</td>" in page and "States the fee from the excerpt." in page

    verdicts = check_gates(summary, Thresholds(overall={"judge.correctness": Bound(min=3.5),
                                                        "judge.helpfulness": Bound(min=3.5)}))
    assert [v.passed for v in verdicts] == [True, False]

    # a second run graded lower: compare shows the judge deltas
    with OpenAIStub([Reply(_scores(c=2, g=5, h=3))]) as stub:
        run_eval(_options(_dataset(tmp_path), tmp_path / "run2", shipped_index, judge_model="judge-m",
                          judge_base_url=stub.url))
    comparison = compare_runs(tmp_path / "run", tmp_path / "run2")
    delta = next(d for d in comparison.metrics if d.scope == "overall" and d.metric == "judge.correctness")
    assert delta.delta == -2.0 and delta.verdict == "worse"
    assert "| overall | judge.correctness | 4.000 | 2.000 | -2.000 | worse |" in render_markdown(comparison)


@pytest.mark.integration
@pytest.mark.usefixtures("loopback")
def test_a_run_folder_refuses_another_judge_model_or_an_edited_rubric(tmp_path: Path, shipped_index: Path):
    prompts = tmp_path / "prompts"
    shutil.copytree(PROMPTS, prompts)
    dataset = _dataset(tmp_path, "fee")
    with OpenAIStub([Reply(_scores())]) as stub:
        options = _options(dataset, tmp_path / "run", shipped_index, judge_model="judge-m", judge_base_url=stub.url,
                           prompts_dir=str(prompts))
        run_eval(options)
        run_eval(options)  # same judge, same rubric: resumes (nothing left to run)
        assert len(stub.requests) == 1
        with pytest.raises(ConfigurationError, match="new --out"):
            run_eval(options.model_copy(update={"overrides": {**options.overrides, "judge_model": "other"}}))
        rubric = prompts / "judge" / "v1.yaml"
        rubric.write_text(rubric.read_text(encoding="utf-8").replace("do not reward length", "ignore length"),
                          encoding="utf-8")
        with pytest.raises(ConfigurationError, match="new --out"):
            run_eval(options)


@pytest.mark.integration
@pytest.mark.usefixtures("loopback")
def test_a_malformed_judge_reply_is_retried_once_then_recorded_as_an_error(tmp_path: Path, shipped_index: Path):
    with OpenAIStub([Reply("I would give this a solid four.")]) as stub:
        summary = run_eval(_options(_dataset(tmp_path, "fee"), tmp_path / "run", shipped_index,
                                    judge_model="judge-m", judge_base_url=stub.url))
        calls = len(stub.requests)
    assert calls == 2
    (fee,) = read_results(tmp_path / "run")
    assert fee.route == "answer" and fee.outcome.judge is None
    assert fee.outcome.judge_error is not None and "after a retry" in fee.outcome.judge_error
    assert fee.outcome.judge_usage is not None and fee.outcome.judge_usage.input_tokens == 240  # both attempts
    overall = summary["overall"]
    assert overall["judge.errors"] == 1 and overall["judge.judged"] == 0 and overall["judge.correctness"] is None
    assert overall["route.accuracy"] == 1.0 and overall["retrieval.recall@5"] is not None
    md, _ = write_reports(tmp_path / "run")
    assert "judge error: judge reply unusable after a retry" in md.read_text(encoding="utf-8")
    # a gate on a judge metric fails when the judge was configured but graded nothing
    (verdict,) = check_gates(summary, Thresholds(overall={"judge.correctness": Bound(min=1)}))
    assert not verdict.passed and not verdict.skipped

    # the retry is the second chance: a good second reply is used
    with OpenAIStub([Reply("no json here"), Reply(_scores(c=5))]) as stub:
        run_eval(_options(_dataset(tmp_path, "fee"), tmp_path / "run2", shipped_index,
                          judge_model="judge-m", judge_base_url=stub.url))
        assert len(stub.requests) == 2
    (fee,) = read_results(tmp_path / "run2")
    assert fee.outcome.judge is not None and fee.outcome.judge.correctness == 5 and fee.outcome.judge_error is None


@pytest.mark.integration
@pytest.mark.usefixtures("loopback")
def test_a_failing_judge_server_is_recorded_and_the_run_completes(tmp_path: Path, shipped_index: Path):
    with OpenAIStub([Reply(status=500)]) as stub:
        summary = run_eval(_options(_dataset(tmp_path, "fee", "fire"), tmp_path / "run", shipped_index,
                                    judge_model="judge-m", judge_base_url=stub.url))
        calls = len(stub.requests)
    assert calls == 1  # llm_max_retries=0, and only the answered case is graded
    results = {r.id: r for r in read_results(tmp_path / "run")}
    assert results["fee"].outcome.judge_error is not None
    assert results["fee"].outcome.judge_error.startswith("judge failed: ") and "500" in results["fee"].outcome.judge_error
    assert results["fee"].outcome.judge is None and results["fire"].outcome.judge_error is None
    assert summary["overall"]["cases"] == 2 and summary["overall"]["errors"] == 0
    assert summary["overall"]["judge.errors"] == 1 and summary["overall"]["route.accuracy"] is not None


@pytest.mark.integration
@pytest.mark.usefixtures("loopback")
def test_without_a_judge_nothing_is_sent_and_no_judge_fields_appear(tmp_path: Path, shipped_index: Path):
    with OpenAIStub([Reply(_scores())]) as stub:
        # an endpoint is configured, but no judge model: the (extractive) run must not call it
        summary = run_eval(_options(_dataset(tmp_path), tmp_path / "run", shipped_index, openai_base_url=stub.url))
        assert stub.requests == []
    assert summary["judge"] is None
    assert not [k for scope in (summary["overall"], *summary["by_dataset"].values()) for k in scope if k.startswith("judge.")]
    for r in read_results(tmp_path / "run"):
        assert r.outcome.judge is None and r.outcome.judge_error is None and r.outcome.judge_usage is None
    md, html = write_reports(tmp_path / "run")
    report = md.read_text(encoding="utf-8")
    assert "judge." not in report and "Judge:" not in report
    assert "Judge:" not in html.read_text(encoding="utf-8")
    (verdict,) = check_gates(summary, Thresholds(overall={"judge.correctness": Bound(min=4)}))
    assert verdict.passed and verdict.skipped


@pytest.mark.integration
@pytest.mark.usefixtures("loopback")
def test_cli_judge_model_option_switches_the_judge_on(
    tmp_path: Path, shipped_index: Path, monkeypatch: pytest.MonkeyPatch
):
    thresholds = tmp_path / "gates.yaml"
    thresholds.write_text("overall:\n  judge.correctness: {min: 3}\n  errors: {max: 0}\n", encoding="utf-8")
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(shipped_index))
    monkeypatch.setenv("ASSISTANT_CORPUS_DIR", str(CORPUS))
    monkeypatch.setenv("ASSISTANT_PROMPTS_DIR", str(PROMPTS))
    dataset = _dataset(tmp_path, "fee")
    runner = CliRunner()
    with OpenAIStub([Reply(_scores())]) as stub:
        monkeypatch.setenv("ASSISTANT_JUDGE_BASE_URL", stub.url)
        plain = runner.invoke(app, ["eval", "run", "-d", str(dataset), "--out", str(tmp_path / "r1"), "--check",
                                    "--thresholds", str(thresholds), "-q"])
        assert plain.exit_code == 0, plain.output
        assert "skip overall judge.correctness" in plain.output and stub.requests == []
        judged = runner.invoke(app, ["eval", "run", "-d", str(dataset), "--out", str(tmp_path / "r2"), "--check",
                                     "--thresholds", str(thresholds), "--judge-model", "judge-m", "-q"])
        assert judged.exit_code == 0, judged.output
        assert len(stub.requests) == 1 and stub.requests[0]["body"]["model"] == "judge-m"
    assert "ok   overall judge.correctness = 4" in judged.output
    config = json.loads((tmp_path / "r2" / "config.json").read_text(encoding="utf-8"))
    assert config["overrides"]["judge_model"] == "judge-m" and config["fingerprint"]["judge"]["model"] == "judge-m"
