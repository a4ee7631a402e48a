"""The Chroma server path (ASSISTANT_CHROMA_URL): a real `chroma run` on loopback."""

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from assistant import Assistant, HelpRequest, JourneyContext
from assistant.config import Settings
from assistant.errors import BackendError
from tests.conftest import free_port, serving

pytestmark = pytest.mark.integration


@pytest.fixture
def chroma_url(tmp_path: Path, loopback: None) -> Iterator[str]:
    binary = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    assert binary, "the chroma CLI comes with chromadb"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [binary, "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1", "--port", str(port)]
    with serving(command, probe=f"{url}/api/v2/heartbeat", seconds=30, what="chroma server"):
        yield url


def test_ingest_and_answer_through_a_chroma_server(small_corpus: Path, tmp_path: Path, chroma_url: str):
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=small_corpus, chroma_url=chroma_url)
    assistant = Assistant(settings)
    report = assistant.ingest()
    assert report.chunks_total > 0
    assert not (tmp_path / "data" / "chroma").exists()  # vectors live in the server, not on disk here
    response = assistant.answer(HelpRequest(message="when do payouts arrive", journey=JourneyContext(market="us-ca")))
    assert response.citations, response.answer
    # the collection really is on the server
    collections = httpx.get(
        f"{chroma_url}/api/v2/tenants/default_tenant/databases/default_database/collections", timeout=5
    ).json()
    assert any(c["name"].startswith(settings.collection) for c in collections)


def test_a_dead_chroma_server_is_a_backend_error(small_corpus: Path, tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=small_corpus, chroma_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(BackendError):
        Assistant(settings).ingest()
