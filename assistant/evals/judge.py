"""LLM-as-judge for eval runs: a chat model grades each answered case with a rubric prompt.

The rubric is a prompt file (``prompts/judge/<version>.yaml``, loaded like the answer prompt).
The judge sees the driver's question, journey and conversation (redacted as the assistant would
redact them), the excerpts the answer cites, the case's reference expectations (``must_include``
and ``must_not_include``) and the answer, and replies with one JSON object: integer scores 1-5
for ``correctness``, ``groundedness`` and ``helpfulness`` and a one-sentence ``rationale``.

Only answered cases (route ``answer``) are graded: an escalation or a refusal has no answer to
grade, and whether it was the right route is what the deterministic route and reason metrics
measure. A judge failure never fails a run: timeouts and HTTP errors (after the client's own
retries) and a reply that still does not parse after one retry become a
:attr:`JudgeVerdict.error` on the case.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import openai
from langchain_core.messages import BaseMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, ConfigDict, Field

from assistant.config import Settings
from assistant.errors import ConfigurationError
from assistant.evals.dataset import EvalCase
from assistant.generation.chat import (
    MODEL_FAILURES,
    parse_json_object,
    priced,
    render_history,
    render_journey,
    reply_tokens,
)
from assistant.generation.prompts import LoadedPrompt, load_prompt
from assistant.guardrails.engine import redact_request
from assistant.guardrails.pii import redact
from assistant.response import Usage

logger = logging.getLogger("assistant.evals.judge")

PROMPT_ID = "judge"
#: The judge metrics of a run summary (means over judged cases).
DIMENSIONS = ("correctness", "groundedness", "helpfulness")


class JudgeScores(BaseModel):
    """The judge's grades for one answer (1 = bad, 5 = good; rubric in the prompt file)."""

    model_config = ConfigDict(frozen=True)

    correctness: int = Field(ge=1, le=5)
    groundedness: int = Field(ge=1, le=5)
    helpfulness: int = Field(ge=1, le=5)
    rationale: str


class JudgeVerdict(BaseModel):
    """What grading one answer produced: scores, or why there are none; tokens spent either way."""

    model_config = ConfigDict(frozen=True)

    scores: JudgeScores | None = None
    error: str | None = None
    usage: Usage = Field(default_factory=Usage)


class MalformedJudgeReply(ValueError):
    """The judge's reply is empty, not JSON, or not the expected scores."""


def parse_scores(content: str) -> JudgeScores:
    """Scores from the judge's text, tolerant of code fences and chatter around the JSON object."""
    return parse_json_object(content, JudgeScores, MalformedJudgeReply)


def render_expected(case: EvalCase) -> str:
    """The case's reference expectations, one per line."""
    lines = [f"- The answer must state: {fact}" for fact in case.must_include]
    lines += [f"- The answer must not say: {text}" for text in case.must_not_include]
    return "\n".join(lines) or "(none given: grade against the excerpts)"


def render_cited(excerpts: list[tuple[str, str]]) -> str:
    """Numbered ``(heading, text)`` excerpts, each fenced as data."""
    blocks = [f"[{n}] {heading}\n<<<\n{text.strip()}\n>>>" for n, (heading, text) in enumerate(excerpts, start=1)]
    return "\n\n".join(blocks) or "(none: the answer cites nothing)"


class Judge:
    """Grades answers with the judge model over the OpenAI protocol (temperature 0)."""

    def __init__(self, settings: Settings, *, prompt: LoadedPrompt | None = None) -> None:
        if not settings.judge_model:
            raise ConfigurationError("the judge needs ASSISTANT_JUDGE_MODEL")
        base_url = settings.judge_base_url or settings.openai_base_url
        key = settings.judge_api_key or settings.openai_api_key
        if key is None and not base_url:
            raise ConfigurationError(
                "ASSISTANT_JUDGE_MODEL needs an API key (ASSISTANT_JUDGE_API_KEY or OPENAI_API_KEY) "
                "or a compatible server (ASSISTANT_JUDGE_BASE_URL or OPENAI_BASE_URL)"
            )
        self.settings = settings
        self.model_name = settings.judge_model
        self.prompt = prompt or load_prompt(Path(settings.prompts_dir), PROMPT_ID, settings.judge_prompt_version)
        params: dict[str, Any] = {"temperature": 0, **self.prompt.file.model}
        self._model = ChatOpenAI(
            model=self.model_name, api_key=key.get_secret_value() if key else "not-needed", base_url=base_url,
            timeout=settings.llm_timeout, max_retries=settings.llm_max_retries, **params,
        )
        self._json_mode = settings.structured_output

    def inputs(self, case: EvalCase, answer: str, excerpts: list[tuple[str, str]]) -> dict[str, str]:
        """The prompt's input variables: the case's request redacted as the assistant redacts it."""
        request = case.to_request()
        request = redact_request(request, redact(request.message).text)
        return {
            "question": request.message,
            "journey": render_journey(request.journey),
            "history": render_history(list(request.history), self.settings.history_tokens),
            "excerpts": render_cited(excerpts),
            "expected": render_expected(case),
            "answer": answer.strip() or "(empty)",
        }

    def _call(self, messages: list[BaseMessage]) -> BaseMessage:
        model: Any = self._model
        if self._json_mode == "json_object":
            model = model.bind(response_format={"type": "json_object"})
        try:
            reply: BaseMessage = model.invoke(messages)
        except openai.BadRequestError as exc:
            if self._json_mode == "json_object" and "response_format" in str(exc):
                logger.warning("the judge's server refused JSON mode; using the tolerant parser from now on")
                self._json_mode = "prompt"
                return self._call(messages)
            raise
        return reply

    def _usage(self, input_tokens: int, output_tokens: int) -> Usage:
        return priced(self.model_name, input_tokens, output_tokens, self.settings)

    def grade(self, case: EvalCase, answer: str, excerpts: list[tuple[str, str]]) -> JudgeVerdict:
        """Grade ``answer`` to ``case`` given the cited ``(heading, text)`` excerpts.

        A malformed reply is asked for once more; a model failure or a second malformed reply
        gives a verdict with ``error`` set (this never raises for the model's sake).
        """
        messages = list(self.prompt.template.format_messages(**self.inputs(case, answer, excerpts)))
        prompt_text = "\n".join(str(m.content) for m in messages)
        input_tokens = output_tokens = 0
        problem = ""
        for attempt in (1, 2):
            try:
                reply = self._call(messages)
            except MODEL_FAILURES as exc:
                detail = str(exc).splitlines()[0] if str(exc) else ""
                return JudgeVerdict(
                    error=f"judge failed: {type(exc).__name__}" + (f": {detail}" if detail else ""),
                    usage=self._usage(input_tokens, output_tokens),
                )
            text = str(reply.content)
            tokens_in, tokens_out = reply_tokens(reply, prompt_text)
            input_tokens += tokens_in
            output_tokens += tokens_out
            try:
                scores = parse_scores(text)
            except MalformedJudgeReply as exc:
                problem = str(exc)
                logger.info("judge reply rejected (%s), attempt %d", problem, attempt)
                continue
            return JudgeVerdict(scores=scores, usage=self._usage(input_tokens, output_tokens))
        return JudgeVerdict(
            error=f"judge reply unusable after a retry: {problem}", usage=self._usage(input_tokens, output_tokens)
        )
