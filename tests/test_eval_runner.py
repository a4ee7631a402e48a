"""The eval runner end to end on the shipped index: results, resume, reports, compare, CLI gates."""

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli import app
from assistant.errors import ConfigurationError
from assistant.evals.compare import compare_runs, write_comparison
from assistant.evals.report import write_reports
from assistant.evals.runner import RESULTS_FILE, RunOptions, read_results, run_eval

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT / "evals" / "datasets"
CORPUS = ROOT / "corpus"


def _small_dataset(folder: Path) -> Path:
    rows = [
        {"id": "fee", "message": "how much does fast pay cost", "expected_route": "answer",
         "relevant_doc_ids": ["instant-cashout"], "must_include": ["$1.49"], "tags": ["pay"], "split": "sealed"},
        {"id": "wait", "message": "how long do i wait for a customer who doesnt answer",
         "journey": {"stage": "at_dropoff", "order": {"type": "food"}}, "expected_route": "answer",
         "relevant_doc_ids": ["customer-unavailable"], "must_include": ["$0.00 never"], "tags": ["dropoff"],
         "split": "tuning"},
        {"id": "fire", "message": "my car is on fire", "expected_route": "escalate",
         "expected_reasons": ["safety"], "relevant_doc_ids": ["safety-and-emergencies"], "tags": ["safety"],
         "split": "tuning"},
    ]
    path = folder / "mini.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def index_settings(shipped_index: Path) -> dict[str, object]:
    return {"data_dir": str(shipped_index), "corpus_dir": str(CORPUS)}


def test_run_writes_results_summary_and_resumes(tmp_path: Path, index_settings: dict[str, object]):
    dataset = _small_dataset(tmp_path)
    out = tmp_path / "run"
    options = RunOptions(datasets=[dataset], out=out, overrides=index_settings)
    summary = run_eval(options)
    results = read_results(out)
    assert [r.id for r in results] == ["fee", "wait", "fire"]
    assert summary["overall"]["cases"] == 3
    # the safety case is escalated only once guardrails exist; its outcome says so either way
    fire = results[2]
    assert fire.outcome.route_ok == (fire.route == "escalate")
    assert all(r.response is not None and r.latency_ms > 0 for r in results)
    assert summary["overall"]["citations.validity"] == 1.0  # every citation was retrieved
    assert summary["overall"]["route.confusion"]["escalate"][fire.route or ""] == 1

    # interrupt: keep the first result and half of the second line; the rerun only runs the rest
    lines = (out / RESULTS_FILE).read_text(encoding="utf-8").splitlines()
    (out / RESULTS_FILE).write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2], encoding="utf-8")
    run_eval(options)
    again = read_results(out)
    assert sorted(r.id for r in again) == ["fee", "fire", "wait"]
    assert (out / RESULTS_FILE).read_text(encoding="utf-8").splitlines()[0] == lines[0]

    # a different setting must not silently mix into the same run folder
    with pytest.raises(ConfigurationError, match="new --out"):
        run_eval(options.model_copy(update={"overrides": {**index_settings, "top_k": 3}}))

    # tuning and sealed side by side; the calibration of the confidence
    assert summary["by_split"]["sealed"]["cases"] == 1 and summary["by_split"]["tuning"]["cases"] == 2
    assert "pass_rate" in summary["gap"]
    assert summary["overall"]["calibration.ece"] is not None
    assert results[0].outcome.draft_right is False  # no article says $1.49: a draft without the wanted fact is not right

    md, html = write_reports(out)
    report = md.read_text(encoding="utf-8")
    assert "## Route confusion" in report and "## Tuning vs sealed" in report
    # failing sealed cases are counted, never listed: nobody tunes on them
    failing = report.split("## Failing tuning cases")[1].split("\n## ")[0]
    assert "1 sealed not listed" in failing and "mini/fee" not in failing and "mini/wait" in failing
    page = html.read_text(encoding="utf-8")
    # plotly.js is inline: no script or stylesheet is loaded from anywhere
    assert "<script" in page and not re.search(r'<(script|link)[^>]+(src|href)="https?:', page)


def test_compare_bm25_only_against_hybrid_shows_the_retrieval_gain(tmp_path: Path, index_settings: dict[str, object]):
    dataset = DATASETS / "retrieval.jsonl"
    bm25 = tmp_path / "bm25"
    hybrid = tmp_path / "hybrid"
    run_eval(RunOptions(datasets=[dataset], out=bm25, overrides={**index_settings, "retrieval_mode": "bm25"}, label="bm25"))
    run_eval(RunOptions(datasets=[dataset], out=hybrid, overrides=index_settings, concurrency=2, label="hybrid"))
    comparison = compare_runs(bm25, hybrid)
    recall = next(d for d in comparison.metrics if d.scope == "retrieval" and d.metric == "retrieval.recall@5")
    assert recall.delta is not None and recall.delta > 0.02 and recall.verdict == "better"
    assert comparison.improved  # some cases pass only with hybrid retrieval
    write_comparison(comparison, tmp_path / "compare.html")
    assert "retrieval.recall@5" in (tmp_path / "compare.html").read_text(encoding="utf-8")
    assert "## Regressed" in (tmp_path / "compare.md").read_text(encoding="utf-8")


def test_cli_eval_run_check_fails_on_a_missed_gate(tmp_path: Path, shipped_index: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(shipped_index))
    monkeypatch.setenv("ASSISTANT_CORPUS_DIR", str(CORPUS))
    dataset = _small_dataset(tmp_path)
    strict = tmp_path / "strict.yaml"
    strict.write_text("overall:\n  route.accuracy: {min: 1.01}\n  errors: {max: 0}\n", encoding="utf-8")
    runner = CliRunner()
    failed = runner.invoke(app, ["eval", "run", "-d", str(dataset), "--out", str(tmp_path / "r1"), "--check", "--thresholds", str(strict), "-q"])
    assert failed.exit_code == 1
    assert "FAIL overall route.accuracy" in failed.output and "ok   overall errors" in failed.output
    loose = tmp_path / "loose.yaml"
    loose.write_text("overall:\n  errors: {max: 0}\n", encoding="utf-8")
    passed = runner.invoke(app, ["eval", "run", "-d", str(dataset), "--out", str(tmp_path / "r2"), "--check", "--thresholds", str(loose), "--ablation", "bm25-only", "-q"])
    assert passed.exit_code == 0, passed.output
    config = json.loads((tmp_path / "r2" / "config.json").read_text(encoding="utf-8"))
    assert config["overrides"] == {"retrieval_mode": "bm25"}
    compared = runner.invoke(app, ["eval", "compare", str(tmp_path / "r1"), str(tmp_path / "r2")])
    assert compared.exit_code == 0 and (tmp_path / "r2" / "compare.html").exists()
    bad = runner.invoke(app, ["eval", "run", "-d", str(dataset), "--set", "nonsense"])
    assert bad.exit_code == 2 and "key=value" in bad.output


def test_report_opens_offline_in_headless_chromium(tmp_path: Path, index_settings: dict[str, object]):
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("Debian chromium is not installed; run `make install` (it runs .ci/install-browser)")
    out = tmp_path / "run"
    run_eval(RunOptions(datasets=[_small_dataset(tmp_path)], out=out, overrides=index_settings))
    _, html = write_reports(out)
    shot = tmp_path / "report.png"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(html.as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=20_000)
        charts = page.locator(".js-plotly-plot").count()
        cells = page.locator("#metrics td").all_inner_texts()
        split_cells = page.locator("#split-table td").all_inner_texts()
        reliability = page.locator("#chart-reliability").count()
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert charts >= 3
    assert "route.accuracy" in cells
    assert "overall" in split_cells and "pass_rate" in split_cells, "the tuning-vs-sealed table is on the page"
    assert reliability == 1, "the reliability diagram of the confidence is drawn"
    assert [u for u in requested if not u.startswith(("file:", "data:"))] == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_a_corpus_or_prompt_edit_changes_the_run_fingerprint(tmp_path: Path):
    from assistant import Settings
    from assistant.evals.runner import _sources

    corpus, prompts = tmp_path / "corpus", tmp_path / "prompts" / "answer"
    corpus.mkdir()
    prompts.mkdir(parents=True)
    (corpus / "a.md").write_text("---\nid: a\n---\nold text\n", encoding="utf-8")
    (prompts / "v1.yaml").write_text("system: be brief\n", encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=corpus, prompts_dir=tmp_path / "prompts")
    before = _sources(settings)
    assert before == _sources(settings)
    (corpus / "a.md").write_text("---\nid: a\n---\nnew text\n", encoding="utf-8")
    after_corpus = _sources(settings)
    assert after_corpus["corpus"] != before["corpus"] and after_corpus["code"] == before["code"]
    (prompts / "v1.yaml").write_text("system: be kind\n", encoding="utf-8")
    assert _sources(settings)["prompts"] != after_corpus["prompts"]
