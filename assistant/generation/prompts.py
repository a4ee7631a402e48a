"""Prompts as versioned files: ``prompts/<id>/<version>.yaml``, loaded into a ChatPromptTemplate.

A prompt file has ``id``, ``version``, ``description``, ``model`` (parameters such as
``temperature`` and ``max_tokens``), ``input_variables`` and ``messages`` (``role``: system, user
or assistant; ``content``: a template with ``{variables}``; literal braces doubled). A file that
does not parse, or whose messages use variables other than the declared ones, fails at load with
the file and the reason. Each loaded prompt carries a content hash recorded in every response.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from langchain_core.prompts import ChatPromptTemplate
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistant.errors import ConfigurationError


class PromptMessage(BaseModel):
    """One message of a prompt."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)


class PromptFile(BaseModel):
    """The parsed contents of a prompt file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    version: str = Field(min_length=1)
    description: str = ""
    model: dict[str, Any] = Field(default_factory=dict)
    input_variables: list[str]
    messages: list[PromptMessage] = Field(min_length=1)


class LoadedPrompt(BaseModel):
    """A prompt ready to use: the template, its file, and a hash of the file's content."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    file: PromptFile
    path: Path
    sha256: str
    template: ChatPromptTemplate

    @property
    def label(self) -> str:
        """``id@version``, as recorded in responses."""
        return f"{self.file.id}@{self.file.version}"


def prompt_path(prompts_dir: Path, prompt_id: str, version: str) -> Path:
    """Where ``prompt_id`` at ``version`` lives."""
    return prompts_dir / prompt_id / f"{version}.yaml"


def latest_version(prompts_dir: Path, prompt_id: str) -> str:
    """The highest version file of a prompt (``v1`` < ``v2`` < ``v10``)."""
    folder = prompts_dir / prompt_id
    versions = sorted(
        (p.stem for p in folder.glob("*.yaml")),
        key=lambda v: (len(v), v),
    )
    if not versions:
        raise ConfigurationError(f"no prompt files for {prompt_id!r} in {folder}")
    return versions[-1]


def load_prompt(prompts_dir: Path, prompt_id: str, version: str | None = None) -> LoadedPrompt:
    """Load and validate a prompt (the latest version when ``version`` is ``None``)."""
    version = version or latest_version(prompts_dir, prompt_id)
    path = prompt_path(prompts_dir, prompt_id, version)
    try:
        raw = path.read_bytes()
        data = yaml.safe_load(raw.decode("utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"prompt {prompt_id!r} version {version!r}: no file {path}") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"prompt file {path}: unreadable: {exc}") from exc
    try:
        file = PromptFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigurationError(f"prompt file {path}: {where}: {first['msg']}") from exc
    if file.id != prompt_id or file.version != version:
        raise ConfigurationError(
            f"prompt file {path}: says id {file.id!r} version {file.version!r}, expected {prompt_id!r} {version!r}"
        )
    try:
        template = ChatPromptTemplate.from_messages([(m.role, m.content) for m in file.messages])
    except (ValueError, KeyError) as exc:
        raise ConfigurationError(f"prompt file {path}: bad template: {exc}") from exc
    used = set(template.input_variables)
    declared = set(file.input_variables)
    if used != declared:
        missing = sorted(declared - used)
        undeclared = sorted(used - declared)
        parts = [f"declared but unused: {missing}" if missing else "", f"used but not declared: {undeclared}" if undeclared else ""]
        raise ConfigurationError(f"prompt file {path}: input variables do not match ({'; '.join(p for p in parts if p)})")
    return LoadedPrompt(file=file, path=path, sha256=hashlib.sha256(raw).hexdigest(), template=template)
