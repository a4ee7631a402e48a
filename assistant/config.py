"""Settings, read from ``ASSISTANT_*`` environment variables (and a ``.env`` file if present).

Everything has an offline default: no key, no server, no network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from assistant.errors import ConfigurationError

#: The repository checkout this package sits in (holds ``corpus/`` when run from a clone).
_REPO_ROOT = Path(__file__).resolve().parent.parent


#: The prompts shipped inside the package: ``assistant/prompts`` links to the repository's
#: ``prompts/`` (one source of truth), and a wheel carries the files themselves.
PACKAGED_PROMPTS = Path(__file__).resolve().parent / "prompts"

class Settings(BaseSettings):
    """Configuration of an :class:`~assistant.Assistant`. Field ``x`` reads ``ASSISTANT_X``."""

    model_config = SettingsConfigDict(
        env_prefix="ASSISTANT_", env_file=".env", extra="ignore", frozen=True
    )

    # -- where things live
    data_dir: Path = Field(Path(".assistant"), description="Index, BM25 files and manifest.")
    corpus_dir: Path | None = Field(
        None, description="Policy documents; default ./corpus, else the checkout's corpus/."
    )

    # -- vector store
    chroma_url: str | None = Field(
        None, description="Chroma server URL (http://host:port); embedded Chroma when unset."
    )
    collection: str = Field("driver-help", min_length=3, description="Chroma collection prefix.")

    # -- embeddings
    embedding_provider: Literal["local", "openai"] = "local"
    embedding_model: str | None = Field(
        None, description="OpenAI embedding model when embedding_provider=openai."
    )
    embedding_batch_size: int = Field(32, ge=1, le=1024)
    embedding_threads: int = Field(2, ge=1, le=64)
    query_cache_size: int = Field(2048, ge=0)
    exact_search_max_chunks: int = Field(
        20_000, ge=0,
        description="Up to this many chunks, dense search is exact (numpy, vectors held in memory, about 1.5 KB "
        "a chunk); above it, Chroma's HNSW. 0: always Chroma.",
    )

    # -- OpenAI-compatible endpoint (read without the ASSISTANT_ prefix too)
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ASSISTANT_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        None, validation_alias=AliasChoices("ASSISTANT_OPENAI_BASE_URL", "OPENAI_BASE_URL")
    )

    # -- chunking
    chunk_tokens: int = Field(220, ge=32, le=2048)
    chunk_overlap: int = Field(30, ge=0, le=512)

    # -- retrieval
    top_k: int = Field(5, ge=1, le=50, description="Passages returned by retrieval.")
    candidates: int = Field(60, ge=5, le=500, description="Candidates per retriever before fusion.")
    rrf_k: int = Field(10, ge=1, description="RRF constant; small values favour the top of each ranking.")
    retrieval_mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    use_journey: bool = Field(True, description="Apply journey filters and boosts.")
    multilingual: bool = Field(
        True,
        description="Search messages in other languages through the bundled multilingual model (its pivots are "
        "built at ingest, about a minute for the shipped corpus); off: such messages go to a person.",
    )
    context_tokens: int = Field(1200, ge=100, description="Token budget for packed context.")

    # -- answering
    generator: Literal["extractive", "openai"] = Field(
        "extractive", description="extractive (offline quotes) or openai (a chat model over the OpenAI protocol)."
    )
    chat_model: str = Field("gpt-4o-mini", description="Chat model name (or Azure deployment).")
    prompts_dir: Path = Field(
        PACKAGED_PROMPTS,
        description="Folder of prompt files (<id>/<version>.yaml); default: the prompts shipped in the package "
        "(the repository's prompts/, linked into it).",
    )
    structured_output: Literal["json_object", "prompt"] = Field(
        "json_object", description="json_object: ask the server for JSON mode; prompt: rely on the prompt and a tolerant parser."
    )
    llm_timeout: float = Field(10.0, gt=0, description="Seconds per model request.")
    llm_max_retries: int = Field(2, ge=0, le=10, description="Retries on timeouts, 429 and 5xx (bounded backoff).")
    llm_deadline: float = Field(20.0, gt=0, description="Total seconds for a generated answer before falling back.")
    temperature: float | None = Field(None, ge=0, le=2, description="Overrides the prompt file's temperature.")
    max_output_tokens: int | None = Field(None, ge=1, description="Overrides the prompt file's max_tokens.")
    history_tokens: int = Field(600, ge=0, description="Token budget for conversation history sent to the model.")
    model_prices: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {"gpt-4o-mini": (0.00015, 0.0006), "gpt-4o": (0.0025, 0.01), "gpt-4.1-mini": (0.0004, 0.0016)},
        description="USD per 1K input and output tokens, by model.",
    )
    azure_endpoint: str | None = Field(None, description="Azure OpenAI endpoint; switches to AzureChatOpenAI.")
    azure_deployment: str | None = None
    azure_api_version: str = "2024-10-21"
    guardrail_policy: Path | None = Field(
        None, description="Guardrail policy YAML replacing the shipped assistant/guardrails/policy.yaml."
    )
    evidence_log: Path | None = Field(
        None, description="JSONL file of backend log lines (driver_id, ts, level, event, code, message) used as defect evidence."
    )
    prompt_version: str | None = Field(
        None, description="Prompt version to answer with (recorded in every response; the extractive composer uses none)."
    )
    min_confidence: float | None = Field(
        None, ge=0.0, le=1.0,
        description="Below this confidence, route to a human with low_confidence. Unset: the offline answer "
        "model's fitted threshold (assistant/generation/answer_model.json), or 0.35 for a chat model's answer.",
    )
    max_message_chars: int = Field(4000, ge=100)

    # -- conversation store and HTTP service
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the conversation store (sqlite:///path or postgresql://user@host/db). "
        "The library records conversations when it is set; `assistant serve` defaults to <data_dir>/assistant.db.",
    )
    spool_dir: Path | None = Field(None, description="Where records wait while the database is down; default <data_dir>/spool.")
    review_sample_rate: float = Field(
        0.02, ge=0.0, le=1.0, description="Share of plain answers sampled into the review queue for quality checks."
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Bearer API keys the service accepts, comma-separated. None set: no auth, "
        "and `assistant serve` refuses to listen beyond loopback.",
    )
    rate_limit_per_minute: int = Field(120, ge=0, description="Requests per minute per API key (0: no limit).")
    max_body_bytes: int = Field(65536, ge=1024, description="Largest request body the service reads (413 above).")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed to call the service from a browser, comma-separated; none: CORS off."
    )
    friction_rules: Path | None = Field(
        None, description="Help-card friction rules YAML replacing the shipped assistant/suggestions/friction.yaml."
    )
    incident_scan_seconds: float = Field(
        60.0, ge=0, description="How often each service worker scans the store for incidents (0: never)."
    )
    incident_cache_seconds: float = Field(
        15.0, ge=0, description="How long an answer may use a list of open incidents before reading it again."
    )
    console_session_hours: float = Field(12, gt=0, le=24 * 30, description="How long a console sign-in lasts.")
    console_secure_cookies: bool = Field(
        False, description="Mark console cookies Secure even when the service sees plain HTTP "
        "(set it behind a TLS-terminating proxy; requests that arrive over https get Secure anyway).",
    )

    # -- evals: LLM-as-judge (assistant eval run); unset means deterministic metrics only
    judge_model: str | None = Field(
        None, description="Chat model that grades answered eval cases; no judge when unset."
    )
    judge_base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint of the judge; defaults to openai_base_url."
    )
    judge_api_key: SecretStr | None = Field(None, description="API key of the judge; defaults to openai_api_key.")
    judge_prompt_version: str = Field("v1", description="Version of prompts/judge/<version>.yaml.")

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError("chunk_overlap must be smaller than chunk_tokens")
        if self.embedding_provider == "openai" and not self.embedding_model:
            raise ValueError("embedding_provider=openai needs ASSISTANT_EMBEDDING_MODEL")
        return self

    def resolved_database_url(self) -> str:
        """The store's URL: the configured one, else ``<data_dir>/assistant.db`` (SQLite)."""
        return self.database_url or f"sqlite:///{Path(self.data_dir).resolve() / 'assistant.db'}"

    def resolved_spool_dir(self) -> Path:
        """Where records wait while the database is down."""
        return self.spool_dir or Path(self.data_dir) / "spool"

    def resolved_corpus_dir(self) -> Path:
        """The corpus folder: the configured one, ``./corpus``, or the checkout's ``corpus/``."""
        if self.corpus_dir is not None:
            return self.corpus_dir
        for candidate in (Path("corpus"), _REPO_ROOT / "corpus"):
            if candidate.is_dir():
                return candidate
        raise ConfigurationError(
            "no corpus folder found: set ASSISTANT_CORPUS_DIR or pass a path to `assistant ingest`"
        )


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment with ``overrides`` on top, errors as ConfigurationError."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        raise ConfigurationError(f"invalid setting {where}: {err['msg']}") from exc


_Model = TypeVar("_Model", bound=BaseModel)

#: libyaml's safe loader when PyYAML was built with it (about ten times faster), else PyYAML's.
_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load_yaml(text: str) -> Any:
    """``yaml.safe_load`` through libyaml when available (the configuration files are read on
    the first request, so their parse time is start-up time)."""
    return yaml.load(text, Loader=_SAFE_LOADER)


def read_yaml_model(path: Path, model: type[_Model], what: str) -> _Model:
    """A YAML configuration file (a mapping) validated as ``model``; any problem (unreadable,
    bad YAML, not a mapping, an invalid field) is a :class:`ConfigurationError` naming ``what``,
    the file and the first problem."""
    try:
        data = safe_load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{what} {path}: unreadable: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{what} {path}: bad YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{what} {path}: expected a mapping at the top")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigurationError(f"{what} {path}: {where}: {first['msg']}") from exc
