"""Generative answers: a chat model over the OpenAI protocol, through LangChain.

``ChatComposer`` renders the prompt file (``prompts/answer/<version>.yaml``) with the driver's
journey, the numbered excerpts fenced as untrusted data, the trimmed conversation and the
(redacted) question; asks the model for ``{"answer", "citations", "can_answer"}``; and checks the
reply. Structured output uses the provider's JSON mode where it exists and a tolerant parser where
it does not. Every citation must point to an excerpt that was sent: a reply that cites nothing or
cites numbers that do not exist is retried once, then handed to a person (``low_confidence``).

Failures never reach the caller: timeouts, 429 and 5xx are retried by the OpenAI client with
bounded backoff inside a total deadline; past it, or on a malformed or empty reply, the answer
falls back to the extractive composer (the routing then decides, as for any extractive answer).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, TypeVar

import openai
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.utils.json import parse_partial_json
from langchain_openai import AzureChatOpenAI, ChatOpenAI
from pydantic import BaseModel, Field, ValidationError

from assistant.config import Settings
from assistant.errors import ConfigurationError
from assistant.generation.base import Composer, Draft
from assistant.generation.prompts import LoadedPrompt, load_prompt
from assistant.guardrails.policy import Patterns, load_policy
from assistant.ingestion.units import split_units
from assistant.request import HelpRequest, JourneyContext, Turn
from assistant.response import Usage
from assistant.retrieval.base import Passage
from assistant.retrieval.journey import JourneySignals
from assistant.tokens import count_tokens, truncate_tokens

logger = logging.getLogger("assistant.generation")

#: Events shown to the model from the journey (the most recent ones).
JOURNEY_EVENTS = 5
_JSON_OBJECT = re.compile(r"\{.*\}", re.S)
_M = TypeVar("_M", bound=BaseModel)


class ModelAnswer(BaseModel):
    """What the model must return."""

    answer: str = ""
    citations: list[int] = Field(default_factory=list)
    can_answer: bool = True


class ReplyProblem(ValueError):
    """The model's reply cannot be used as it is."""


#: What a model call can fail with; each sends the request to the extractive fallback.
#: ValueError covers a response body that is not JSON (the openai client lets it through).
MODEL_FAILURES = (openai.OpenAIError, TimeoutError, ValueError)


class MalformedReply(ReplyProblem):
    """Empty, not JSON, or not the expected fields: handled like a model failure."""


class UngroundedReply(ReplyProblem):
    """Well-formed, but cites nothing it was given or excerpts that do not exist."""


def render_journey(journey: JourneyContext | None) -> str:
    """The journey in one or two compact lines."""
    if journey is None:
        return "(unknown)"
    parts = []
    if journey.stage:
        parts.append(f"stage={journey.stage.value}")
    if journey.market:
        parts.append(f"market={journey.market}")
    if journey.app_version or journey.platform:
        parts.append(f"app={journey.app_version or '?'} {journey.platform or ''}".strip())
    if journey.account_status:
        parts.append(f"account={journey.account_status}")
    if journey.order:
        flags = ",".join(sorted(journey.order.all_flags))
        parts.append(f"order={journey.order.type or 'order'}" + (f" ({flags})" if flags else ""))
    line = ", ".join(parts) or "(unknown)"
    events = [
        f"{e.type.value} {e.name or ''} {e.code or ''} {e.detail or ''}".strip()
        for e in journey.events[-JOURNEY_EVENTS:]
    ]
    return line + (f"; recent app events: {' | '.join(events)}" if events else "")


def withhold_planted(text: str, planted: Patterns) -> str:
    """``text`` with each sentence that speaks to a model (``planted``) replaced by :data:`WITHHELD`.

    Ingestion quarantines such chunks, but an index built elsewhere (a shared Chroma server, an
    older build) may still hold one: the model never sees the instruction.
    """
    for sentence in split_units(text):
        if planted.search(sentence):
            text = text.replace(sentence, WITHHELD)
    return text


def render_excerpts(passages: list[Passage], planted: Patterns | None = None) -> str:
    """Numbered excerpts, each fenced so the model can tell data from instructions."""
    blocks = []
    for number, passage in enumerate(passages, start=1):
        text = withhold_planted(passage.text, planted) if planted else passage.text
        blocks.append(f"[{number}] {passage.title} > {passage.section}\n<<<\n{text.strip()}\n>>>")
    return "\n\n".join(blocks) or "(none)"


def follows_excerpt_instruction(answer: str, passages: list[Passage], watch: Patterns) -> str | None:
    """Why ``answer`` looks like it obeys text in an excerpt rather than informing the driver.

    An excerpt sentence that addresses someone other than the driver (``watch``: "tell drivers
    to ...", "reply with ...", "the assistant ...") is not help text. An answer that repeats a
    link, address or contact from such a sentence, or :data:`FOLLOW_WORDS` words of it in a row,
    is carrying it out.
    """
    answer_lower = answer.lower()
    answer_words = " ".join(re.findall(r"\w+", answer_lower))
    for number, passage in enumerate(passages, start=1):
        for sentence in split_units(passage.text):
            if not watch.search(sentence):
                continue
            quoted = " ".join(sentence.split())[:80]
            if any(token.lower() in answer_lower for token in _CONTACT.findall(sentence)):
                return f'follows text aimed at the model in excerpt [{number}]: "{quoted}"'
            words = re.findall(r"\w+", sentence.lower())
            for start in range(0, max(0, len(words) - FOLLOW_WORDS + 1)):
                if " ".join(words[start : start + FOLLOW_WORDS]) in answer_words:
                    return f'follows text aimed at the model in excerpt [{number}]: "{quoted}"'
    return None


def render_history(history: list[Turn], budget: int) -> str:
    """The latest turns that fit ``budget`` tokens, oldest first."""
    kept: list[str] = []
    used = 0
    for turn in reversed(history):
        line = f"{turn.role}: {turn.text.strip()}"
        cost = count_tokens(line)
        if used + cost > budget:
            if not kept:
                kept.append(truncate_tokens(line, budget))
            break
        kept.append(line)
        used += cost
    return "\n".join(reversed(kept)) or "(none)"


def parse_json_object(content: str, schema: type[_M], problem: type[ValueError]) -> _M:
    """``schema`` validated from the first JSON object in a model's text, tolerant of code fences
    and chatter around it; raises ``problem`` saying what is wrong."""
    text = content.strip()
    if not text:
        raise problem("empty reply")
    match = _JSON_OBJECT.search(text)
    if match is None:
        raise problem("no JSON object in the reply")
    try:
        return schema.model_validate(json.loads(match.group(0)))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise problem(f"reply is not the expected JSON: {str(exc).splitlines()[0]}") from exc


def parse_reply(content: str, excerpts: int) -> ModelAnswer:
    """A validated answer from the model's text, tolerant of code fences and chatter around it."""
    answer = parse_json_object(content, ModelAnswer, MalformedReply)
    if answer.can_answer:
        if not answer.answer.strip():
            raise MalformedReply("can_answer is true but the answer is empty")
        if not answer.citations:
            raise UngroundedReply("the answer cites no excerpt")
        bad = [c for c in answer.citations if not 1 <= c <= excerpts]
        if bad:
            raise UngroundedReply(f"cites excerpts that were not sent: {bad}")
    return answer


_NUMBER = re.compile(r"\$?\d+(?:[.,:]\d+)*%?")
#: Consecutive words of the system prompt that may not appear in an answer.
LEAK_WORDS = 8
#: Words in a row from an excerpt sentence addressed to the model that mean the answer obeys it.
FOLLOW_WORDS = 6
#: Shown to the model in place of an excerpt sentence that speaks to a model.
WITHHELD = "[withheld: text addressed to an AI model, not help for drivers]"
#: Links, e-mail addresses, domains and phone numbers: what a planted instruction wants repeated.
_CONTACT = re.compile(
    r"https?://\S+|\b[\w.+-]+@[\w-]+\.[\w.]+\b|\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|io|app|co|info|biz|xyz|ly)\b"
    r"|\+?\d[\d\s().-]{7,}\d"
)


def check_output(answer: str, cited: list[Passage], journey: str, system: str) -> str | None:
    """Why a well-formed answer must not reach the driver, or ``None``.

    * every number, amount or time in the answer must appear in a cited excerpt or the journey
      (a model that invents a fee or a deadline is caught here);
    * no run of :data:`LEAK_WORDS` words from the system prompt may appear (a leaked prompt).
    """
    evidence = " ".join(p.text for p in cited) + " " + journey
    known = {n.strip("$%").replace(",", "") for n in _NUMBER.findall(evidence)}
    unsupported = [n for n in _NUMBER.findall(answer) if n.strip("$%").replace(",", "") not in known]
    if unsupported:
        return f"states figures no cited excerpt gives: {', '.join(unsupported[:5])}"
    words = re.findall(r"\w+", system.lower())
    answer_words = " ".join(re.findall(r"\w+", answer.lower()))
    for start in range(0, max(0, len(words) - LEAK_WORDS + 1)):
        if " ".join(words[start : start + LEAK_WORDS]) in answer_words:
            return "repeats the assistant's instructions"
    return None


def _emit_answer(content: str, shown: str, on_delta: Callable[[str], None]) -> str:
    """Pass on the new text of the ``answer`` field in a partial JSON reply; returns what is shown."""
    partial = parse_partial_json(content) if "{" in content else None
    answer = partial.get("answer") if isinstance(partial, dict) else None
    if isinstance(answer, str) and answer.startswith(shown) and len(answer) > len(shown):
        on_delta(answer[len(shown) :])
        return answer
    return shown


def _whole(total: AIMessageChunk | None) -> AIMessage:
    """The streamed chunks as one message (content and usage)."""
    if total is None:
        raise MalformedReply("empty stream")
    return AIMessage(content=total.content, usage_metadata=total.usage_metadata)


def reply_tokens(message: BaseMessage, prompt_text: str) -> tuple[int, int]:
    """Tokens in and out of one model call: the API's usage, else counted with ``tiktoken``."""
    meta = getattr(message, "usage_metadata", None) or {}
    input_tokens = int(meta.get("input_tokens") or count_tokens(prompt_text))
    output_tokens = int(meta.get("output_tokens") or count_tokens(str(message.content)))
    return input_tokens, output_tokens


def priced(model: str | None, input_tokens: int, output_tokens: int, settings: Settings) -> Usage:
    """Usage with its cost from ``settings.model_prices`` (``None`` for a model without a price)."""
    price = settings.model_prices.get(model) if model else None
    cost = None
    if price is not None:
        cost = round(input_tokens / 1000 * price[0] + output_tokens / 1000 * price[1], 6)
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost)


def _usage(message: BaseMessage, prompt_text: str, settings: Settings) -> Usage:
    return priced(settings.chat_model, *reply_tokens(message, prompt_text), settings)


_T = TypeVar("_T")


def _within(deadline: float, call: Callable[[], _T]) -> _T:
    """``call()``'s result, or :class:`TimeoutError` once ``deadline`` (monotonic) passes; the
    call is left to finish in its daemon thread (its HTTP timeout ends it)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0.05:
        raise TimeoutError("deadline reached before the model call")
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="assistant-model-call", daemon=True).start()
    if not done.wait(remaining):
        raise TimeoutError("deadline reached waiting for the model")
    if "error" in box:
        raise box["error"]
    value: _T = box["value"]
    return value


class ChatComposer:
    """Answers with a chat model; falls back to ``fallback`` (the extractive composer)."""

    def __init__(self, settings: Settings, fallback: Composer, *, prompt: LoadedPrompt | None = None) -> None:
        if settings.openai_api_key is None and not settings.openai_base_url and not settings.azure_endpoint:
            raise ConfigurationError(
                "ASSISTANT_GENERATOR=openai needs OPENAI_API_KEY, or OPENAI_BASE_URL for a compatible server"
            )
        self.settings = settings
        self.fallback = fallback
        self.prompt = prompt or load_prompt(Path(settings.prompts_dir), "answer", settings.prompt_version)
        self._json_mode = settings.structured_output
        scan = load_policy(settings.guardrail_policy).corpus_scan
        self._planted, self._watch = scan.patterns, scan.watch

    def _model(self, timeout: float) -> ChatOpenAI | AzureChatOpenAI:
        s = self.settings
        params: dict[str, Any] = dict(self.prompt.file.model)
        if s.temperature is not None:
            params["temperature"] = s.temperature
        if s.max_output_tokens is not None:
            params["max_tokens"] = s.max_output_tokens
        key = s.openai_api_key.get_secret_value() if s.openai_api_key else "not-needed"
        common: dict[str, Any] = {"timeout": timeout, "max_retries": s.llm_max_retries, **params}
        if s.azure_endpoint:
            return AzureChatOpenAI(
                azure_endpoint=s.azure_endpoint, azure_deployment=s.azure_deployment or s.chat_model,
                api_version=s.azure_api_version, api_key=key, **common,
            )
        return ChatOpenAI(model=s.chat_model, api_key=key, base_url=s.openai_base_url, **common)

    def inputs(self, question: str, passages: list[Passage], request: HelpRequest | None) -> dict[str, str]:
        """The prompt's input variables for one request.

        The model reads the driver's own (redacted) words from ``request`` when given: ``question``
        may be the English search rendering of a question in another language.
        """
        return {
            "journey": render_journey(request.journey if request else None),
            "excerpts": render_excerpts(passages, self._planted),
            "history": render_history(list(request.history) if request else [], self.settings.history_tokens),
            "question": request.message if request is not None else question,
        }

    def _bound(self, deadline: float) -> Any:
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            raise TimeoutError("deadline reached before the model call")
        # each try (the client retries timeouts, 429 and 5xx) waits at most llm_timeout; the
        # callers bound the whole call by the deadline
        model: Any = self._model(timeout=min(self.settings.llm_timeout, remaining))
        if self._json_mode == "json_object":
            model = model.bind(response_format={"type": "json_object"})
        return model

    def _refused_json_mode(self, exc: openai.BadRequestError) -> bool:
        if self._json_mode == "json_object" and "response_format" in str(exc):
            logger.warning("the server refused JSON mode; using the tolerant parser from now on")
            self._json_mode = "prompt"
            return True
        return False

    def _call(
        self, messages: list[BaseMessage], deadline: float, on_delta: Callable[[str], None] | None = None
    ) -> AIMessage:
        """One model call, over by the deadline whatever the server does (accepts and never
        replies, replies slowly, retries): the call runs in a worker thread and is abandoned,
        with no more deltas passed on, when the deadline passes."""
        open_gate = threading.Event()
        open_gate.set()

        def guarded(delta: str) -> None:
            if open_gate.is_set():
                on_delta(delta)  # type: ignore[misc]

        try:
            return _within(deadline, lambda: self._call_once(messages, deadline, guarded if on_delta else None))
        finally:
            open_gate.clear()

    def _call_once(
        self, messages: list[BaseMessage], deadline: float, on_delta: Callable[[str], None] | None = None
    ) -> AIMessage:
        try:
            if on_delta is None:
                reply = self._bound(deadline).invoke(messages)
            else:
                reply = self._stream(messages, deadline, on_delta)
        except openai.BadRequestError as exc:
            if self._refused_json_mode(exc):
                return self._call_once(messages, deadline, on_delta)
            raise
        if not isinstance(reply, AIMessage | AIMessageChunk):
            raise MalformedReply("the model returned no message")
        return reply

    def _stream(self, messages: list[BaseMessage], deadline: float, on_delta: Callable[[str], None]) -> AIMessage:
        """Stream the reply, passing on the growing ``answer`` field's new text as it arrives."""
        total: AIMessageChunk | None = None
        shown = ""
        for chunk in self._bound(deadline).stream(messages, stream_usage=True):
            if time.monotonic() > deadline:
                raise TimeoutError("deadline reached while streaming")
            total = chunk if total is None else total + chunk
            shown = _emit_answer(str(total.content), shown, on_delta)
        return _whole(total)

    async def _acall(
        self, messages: list[BaseMessage], deadline: float, on_delta: Callable[[str], None] | None = None
    ) -> AIMessage:
        try:
            if on_delta is None:
                reply = await self._bound(deadline).ainvoke(messages)
            else:
                reply = await self._astream(messages, deadline, on_delta)
        except openai.BadRequestError as exc:
            if self._refused_json_mode(exc):
                return await self._acall(messages, deadline, on_delta)
            raise
        if not isinstance(reply, AIMessage | AIMessageChunk):
            raise MalformedReply("the model returned no message")
        return reply

    async def _astream(self, messages: list[BaseMessage], deadline: float, on_delta: Callable[[str], None]) -> AIMessage:
        """Async :meth:`_stream`."""
        total: AIMessageChunk | None = None
        shown = ""
        async for chunk in self._bound(deadline).astream(messages, stream_usage=True):
            total = chunk if total is None else total + chunk
            shown = _emit_answer(str(total.content), shown, on_delta)
        return _whole(total)

    def compose(
        self,
        question: str,
        passages: list[Passage],
        signals: JourneySignals,
        *,
        request: HelpRequest | None = None,
        on_delta: Callable[[str], None] | None = None,
    ) -> Draft:
        """A generated draft, or the fallback's draft when the model fails or runs out of time.

        ``on_delta`` receives the answer's text as the model writes it (first attempt only).
        """
        if not passages:
            return self.fallback.compose(question, passages, signals, request=request)
        run = self._run(question, passages, request)
        step = next(run)
        try:
            while True:
                deadline, messages, attempt = step
                try:
                    reply: AIMessage | Exception = self._call(messages, deadline, on_delta if attempt == 1 else None)
                except MODEL_FAILURES as exc:
                    reply = exc
                step = run.send(reply)
        except StopIteration as done:
            return self._finish(done.value, question, passages, signals, request)

    async def acompose(
        self,
        question: str,
        passages: list[Passage],
        signals: JourneySignals,
        *,
        request: HelpRequest | None = None,
        on_delta: Callable[[str], None] | None = None,
    ) -> Draft:
        """:meth:`compose`, awaiting the model (``ainvoke``/``astream``) instead of blocking on it."""
        if not passages:
            return self.fallback.compose(question, passages, signals, request=request)
        run = self._run(question, passages, request)
        step = next(run)
        try:
            while True:
                deadline, messages, attempt = step
                try:
                    remaining = max(0.05, deadline - time.monotonic())
                    call = self._acall(messages, deadline, on_delta if attempt == 1 else None)
                    reply: AIMessage | Exception = await asyncio.wait_for(call, remaining)
                except MODEL_FAILURES as exc:
                    reply = exc
                step = run.send(reply)
        except StopIteration as done:
            return self._finish(done.value, question, passages, signals, request)

    def _run(
        self, question: str, passages: list[Passage], request: HelpRequest | None
    ) -> Generator[tuple[float, list[BaseMessage], int], AIMessage | Exception, Draft | str]:
        """The attempts, as a generator the sync and async paths drive: it yields what to send
        and receives the reply (or the exception); it returns a draft, or the reason to fall back."""
        deadline = time.monotonic() + self.settings.llm_deadline
        inputs = self.inputs(question, passages, request)
        messages = self.template_messages(inputs)
        prompt_text = "\n".join(str(m.content) for m in messages)
        journey_text = inputs["journey"]
        system_text = str(messages[0].content) if messages and messages[0].type == "system" else ""
        usage = Usage()
        problem = ""
        for attempt in (1, 2):
            reply = yield deadline, messages, attempt
            if isinstance(reply, Exception):
                logger.warning("chat model failed (%s); answering extractively", type(reply).__name__)
                return f"model unavailable: {type(reply).__name__}"
            step = _usage(reply, prompt_text, self.settings)
            usage = Usage(
                input_tokens=usage.input_tokens + step.input_tokens,
                output_tokens=usage.output_tokens + step.output_tokens,
                cost_usd=None if step.cost_usd is None else (usage.cost_usd or 0.0) + step.cost_usd,
            )
            try:
                answer = parse_reply(str(reply.content), len(passages))
                if answer.can_answer:
                    cited_passages = [passages[c - 1] for c in dict.fromkeys(answer.citations)]
                    why = check_output(answer.answer, cited_passages, journey_text, system_text)
                    if why := why or follows_excerpt_instruction(answer.answer, passages, self._watch):
                        raise UngroundedReply(why)
            except ReplyProblem as exc:
                problem = str(exc)
                logger.info("model reply rejected (%s), attempt %d", problem, attempt)
                if attempt == 2 and isinstance(exc, MalformedReply):
                    return f"malformed model reply: {problem}"
                continue
            cited = [passages[c - 1] for c in dict.fromkeys(answer.citations)]
            return Draft(
                text=answer.answer.strip() if answer.can_answer else "",
                cited=cited if answer.can_answer else [],
                support=1.0 if answer.can_answer else 0.0,
                read=[p.chunk_id for p in passages],
                usage=usage,
                prompt_version=self.prompt.label,
                prompt_hash=self.prompt.sha256,
                can_answer=answer.can_answer,
                note="" if answer.can_answer else "the model said the excerpts do not answer the question",
            )
        return Draft(
            text="", cited=[], support=0.0, read=[p.chunk_id for p in passages], usage=usage,
            prompt_version=self.prompt.label, prompt_hash=self.prompt.sha256, can_answer=False,
            note=f"the model's answer failed validation twice: {problem}",
        )

    def _finish(
        self, outcome: Draft | str, question: str, passages: list[Passage], signals: JourneySignals,
        request: HelpRequest | None,
    ) -> Draft:
        if isinstance(outcome, Draft):
            return outcome
        return self._fallback(question, passages, signals, request, outcome)

    def template_messages(self, inputs: dict[str, str]) -> list[BaseMessage]:
        """The chat messages the prompt renders to."""
        return list(self.prompt.template.format_messages(**inputs))

    def _fallback(
        self, question: str, passages: list[Passage], signals: JourneySignals, request: HelpRequest | None, why: str
    ) -> Draft:
        draft = self.fallback.compose(question, passages, signals, request=request)
        return draft.model_copy(update={"note": f"extractive fallback ({why})"})
