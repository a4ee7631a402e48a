"""Evaluation: datasets of driver cases, a resumable runner, metrics, reports, comparisons, gates.

    assistant eval run [--dataset NAME] [--tag TAG] [--set key=value] [--ablation NAME] [--check]
                       [--judge-model MODEL]
    assistant eval report RUN_DIR
    assistant eval compare RUN_A RUN_B

A run directory holds ``config.json`` (settings and datasets), ``results.jsonl`` (one record per
case: request, response, timings, per-metric outcome), ``summary.json`` and the reports.
"""

from assistant.evals.dataset import EvalCase, LoadedDataset, load_datasets
from assistant.evals.gates import GateResult, check_gates, load_thresholds
from assistant.evals.judge import Judge, JudgeScores, JudgeVerdict
from assistant.evals.runner import CaseResult, RunOptions, run_eval

__all__ = [
    "CaseResult",
    "EvalCase",
    "GateResult",
    "Judge",
    "JudgeScores",
    "JudgeVerdict",
    "LoadedDataset",
    "RunOptions",
    "check_gates",
    "load_datasets",
    "load_thresholds",
    "run_eval",
]
