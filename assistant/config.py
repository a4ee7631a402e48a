"""Settings, read from ``ASSISTANT_*`` environment variables (and a ``.env`` file if present).

Everything has an offline default: no key, no server, no network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from assistant.errors import ConfigurationError

#: The repository checkout this package sits in (holds ``corpus/`` when run from a clone).
_REPO_ROOT = Path(__file__).resolve().parent.parent


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
    context_tokens: int = Field(1200, ge=100, description="Token budget for packed context.")

    # -- answering
    generator: Literal["extractive"] = "extractive"
    guardrail_policy: Path | None = Field(
        None, description="Guardrail policy YAML replacing the shipped assistant/guardrails/policy.yaml."
    )
    evidence_log: Path | None = Field(
        None, description="JSONL file of backend log lines (driver_id, ts, level, event, code, message) used as defect evidence."
    )
    prompt_version: str | None = Field(
        None, description="Prompt version to answer with (recorded in every response; the extractive composer uses none)."
    )
    min_confidence: float = Field(
        0.35, ge=0.0, le=1.0, description="Below this, route to a human with low_confidence."
    )
    answer_sentences: int = Field(4, ge=1, le=12)
    max_message_chars: int = Field(4000, ge=100)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError("chunk_overlap must be smaller than chunk_tokens")
        if self.embedding_provider == "openai" and not self.embedding_model:
            raise ValueError("embedding_provider=openai needs ASSISTANT_EMBEDDING_MODEL")
        return self

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
