"""Shared fixtures. Network: pytest-socket (see pyproject addopts) allows loopback only."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pytest

from assistant import Assistant, Settings

if TYPE_CHECKING:
    from assistant.store import ConversationStore

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"


def write_doc(folder: Path, doc_id: str, body: str, **front: object) -> Path:
    """Write a small policy document with front matter."""
    meta = {
        "id": doc_id,
        "title": front.pop("title", doc_id.replace("-", " ").title()),
        "version": front.pop("version", 1),
        "effective_date": front.pop("effective_date", "2025-01-01"),
        "journey_stages": front.pop("journey_stages", ["account"]),
        "markets": front.pop("markets", "all"),
        "tags": front.pop("tags", []),
        **front,
    }
    lines = ["---"]
    for key, value in meta.items():
        lines.append(f"{key}: {value}")
    lines.append("---")
    path = folder / f"{doc_id}.md"
    path.write_text("\n".join(lines) + "\n\n" + textwrap.dedent(body).strip() + "\n", encoding="utf-8")
    return path


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """Four short documents, one a market variant and one superseded."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_doc(folder, "payouts", """
        # Payouts
        ## When you get paid
        Weekly payouts arrive on Wednesday by direct deposit.
        ## Missing payout
        If a payout is missing after Thursday, contact support with your bank details checked.
        """, journey_stages="[post_delivery, account]", tags="[pay, payouts]")
    write_doc(folder, "payouts-north", """
        # Payouts in the North market
        ## When you get paid in the North
        Payouts in the North market arrive on Friday, paid in northern dollars.
        """, journey_stages="[post_delivery, account]", markets="[north]", variant_of="payouts", tags="[pay]")
    write_doc(folder, "cashout-old", """
        # Cash-out (old)
        ## Fee
        Instant cash-out costs $1.99 per cash-out, once per day.
        """, tags="[pay]")
    write_doc(folder, "cashout", """
        # Cash-out
        ## Fee
        Instant cash-out costs $0.99 per cash-out, up to five per day.
        """, supersedes="[cashout-old]", version=2, tags="[pay]")
    return folder


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def factory(**overrides: object) -> Settings:
        base: dict[str, object] = {"data_dir": tmp_path / "data"}
        base.update(overrides)
        return Settings(**base)  # type: ignore[arg-type]

    return factory


@pytest.fixture(scope="session")
def shipped_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped corpus ingested once per test session (integration tests only)."""
    data = tmp_path_factory.mktemp("shipped-index")
    assistant = Assistant(Settings(data_dir=data, corpus_dir=CORPUS))
    assistant.ingest(CORPUS)
    return data


@pytest.fixture(scope="session")
def shipped_assistant(shipped_index: Path) -> Assistant:
    return Assistant(Settings(data_dir=shipped_index, corpus_dir=CORPUS))


@pytest.fixture
def copy_of_shipped_index(shipped_index: Path, tmp_path: Path) -> Path:
    target = tmp_path / "index"
    shutil.copytree(shipped_index, target)
    return target


def loopback_works() -> bool:
    """False in a fresh network namespace (``unshare -n``) whose loopback interface is down."""
    import socket

    with socket.socket() as server, socket.socket() as client:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        client.settimeout(2)
        try:
            client.connect(server.getsockname())
        except OSError:
            return False
    return True


@pytest.fixture
def loopback() -> None:
    """Skip, saying why, when servers on 127.0.0.1 cannot be reached."""
    if not loopback_works():
        pytest.skip("loopback is down (a fresh `unshare -n` namespace): run `ip link set lo up` first")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_serving(url: str, process: subprocess.Popen[bytes], *, seconds: float, what: str) -> None:
    """Poll ``url`` until it answers 200; fail if ``process`` exits or ``seconds`` pass."""
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert process.poll() is None, f"{what} exited"
        assert time.monotonic() < deadline, f"{what} did not start in {seconds:.0f} s"
        time.sleep(0.2)


@contextmanager
def serving(
    command: list[str], *, probe: str, seconds: float, what: str, output: IO[str] | int = subprocess.DEVNULL, stop_seconds: float = 10,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server on loopback until the block ends: start ``command`` (stdout and stderr to
    ``output``, environment ``env``), wait until ``probe`` answers 200, then terminate it (and
    kill it if it has not stopped after ``stop_seconds``: a llama.cpp server still generating for
    a request its client gave up on finishes that first)."""
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_serving(probe, process, seconds=seconds, what=what)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=stop_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=stop_seconds)


# -- PostgreSQL on loopback (.ci/postgres; `make test` installs Debian's package) -------------

POSTGRES_SCRIPT = REPO / ".ci" / "postgres"


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1, started and stopped by ``.ci/postgres``."""

    def __init__(self) -> None:
        import tempfile

        self.dir = Path(tempfile.mkdtemp(prefix="assistant-pg-"))
        self.port = free_port()
        self.url = ""

    def start(self) -> str:
        done = subprocess.run(
            [str(POSTGRES_SCRIPT), "start", str(self.dir), str(self.port)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f".ci/postgres start failed (run `.ci/postgres install`):\n{done.stderr}"
        self.url = done.stdout.strip().splitlines()[-1]
        return self.url

    def stop(self) -> None:
        subprocess.run([str(POSTGRES_SCRIPT), "stop", str(self.dir)], capture_output=True, text=True, timeout=120, check=True)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (integration tests only)."""
    if not loopback_works():
        pytest.skip("loopback is down (a fresh `unshare -n` namespace): run `ip link set lo up` first")
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.remove()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The session's PostgreSQL database, emptied for this test."""
    import psycopg

    with psycopg.connect(postgres_server.url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return postgres_server.url


STORE_BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ConversationStore:
    """An empty, migrated conversation store: SQLite in the fast tier, PostgreSQL on loopback in
    the integration tier (each test gets the same tests on both)."""
    from assistant.store import ConversationStore
    from assistant.store.database import head_revision

    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    created = ConversationStore.from_url(url)
    assert created.upgrade() == head_revision()
    assert created.is_current()
    return created
