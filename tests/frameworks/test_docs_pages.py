"""The framework pages of the docs, followed literally: each page's quick start runs as written.

A page marks the blocks to run with an HTML comment on the line before the fence (the site does
not show it), and they run in the order of the page, in an empty project directory:

    <!-- docs-test: install -->      ``pip install ...``: each distribution it names is installed
                                      here (the package itself comes from this checkout)
    <!-- docs-test: shell -->        commands, run by bash
    <!-- docs-test: file PATH -->    the whole content of PATH
    <!-- docs-test: append PATH -->  added to the end of PATH
    <!-- docs-test: server -->       commands that start the server; run by bash in the background
    <!-- docs-test: request -->      commands, whose output must be the next block:
    <!-- docs-test: output -->       line by line, where ``...`` stands for any text within a line

Python, ``consent`` and the server are this test's own (the environment the package under test
is installed in). Nothing is inherited that the page should set: no ``CONSENT_*`` or
``DJANGO_*`` variables. The server gets a free port through ``UVICORN_PORT`` (uvicorn's own
variable for ``--port``), and the requests' ``127.0.0.1:8000`` is replaced by it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import httpx
import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "frameworks"
PAGES = ["fastapi", "django", "starlette", "litestar", "quart"]
DOCUMENTED_ADDRESS = "127.0.0.1:8000"
BLOCK = re.compile(
    r"^<!-- docs-test: (?P<kind>[a-z]+)(?: (?P<arg>\S+))? -->\n"
    r"```[^\n]*\n(?P<body>.*?)^```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
KINDS = {"install", "shell", "file", "append", "server", "request", "output"}


@dataclass
class Step:
    kind: str
    arg: str | None
    body: str


def steps(page: str) -> list[Step]:
    text = (DOCS / f"{page}.md").read_text(encoding="utf-8")
    found = [Step(m["kind"], m["arg"], m["body"]) for m in BLOCK.finditer(text)]
    marks = len(re.findall(r"<!-- docs-test:", text))
    assert len(found) == marks, f"{page}.md: a docs-test mark is not right before a fenced block"
    for step in found:
        assert step.kind in KINDS, f"{page}.md: unknown docs-test kind {step.kind!r}"
        assert (step.arg is not None) == (step.kind in {"file", "append"}), step
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def matches(expected: str, actual: str) -> bool:
    """Line by line; ``...`` stands for any text within a line; trailing blank lines and
    carriage returns do not count."""
    want = expected.rstrip("\n").split("\n")
    got = [line.rstrip("\r") for line in actual.rstrip("\r\n").split("\n")]
    if len(want) != len(got):
        return False
    for pattern, line in zip(want, got, strict=True):
        regex = ".*".join(re.escape(part) for part in pattern.split("..."))
        if not re.fullmatch(regex, line.rstrip()):
            return False
    return True


def check_install(body: str) -> None:
    """Every distribution the install command names is installed in this environment."""
    commands = [shlex.split(line) for line in body.splitlines() if line.startswith("pip install")]
    assert commands, "the install block has no pip install command"
    for words in commands:
        names = [w for w in words[2:] if not w.startswith("-") and "/" not in w]
        assert any("/" in w for w in words[2:]), "install from a checkout: a path is expected"
        for name in [*names, "asgi-consent"]:
            metadata.version(re.split(r"[\[<>=!~;]", name)[0])


class Project:
    """The project directory, the environment the page's commands run in, and the server."""

    def __init__(self, root: Path) -> None:
        self.root = root / "project"
        self.root.mkdir()
        bindir = root / "bin"  # `python` is this test's interpreter, whatever it is called here
        bindir.mkdir()
        for name in ("python", "python3"):
            (bindir / name).symlink_to(sys.executable)
        scripts = sysconfig.get_path("scripts")  # consent, uvicorn, django-admin
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("CONSENT_", "DJANGO_"))
        }
        self.env.update(
            PATH=os.pathsep.join([str(bindir), scripts, self.env.get("PATH", "")]),
            PYTHONDONTWRITEBYTECODE="1",
        )
        self.port = free_port()
        self.log = root / "server.log"
        self.server: subprocess.Popen[bytes] | None = None

    def address(self, text: str) -> str:
        return text.replace(DOCUMENTED_ADDRESS, f"127.0.0.1:{self.port}")

    def bash(self, body: str) -> str:
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", self.address(body)],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, (
            f"exit {result.returncode} from:\n{body}\n{result.stdout}{result.stderr}"
            f"{self.server_log()}"
        )
        return result.stdout

    def start(self, body: str) -> None:
        assert self.server is None, "a page starts one server"
        with self.log.open("wb") as out:
            self.server = subprocess.Popen(
                ["bash", "-e", "-c", body],
                cwd=self.root,
                env={**self.env, "UVICORN_PORT": str(self.port)},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: bash and the server stop together
            )
        deadline = time.monotonic() + 30
        while True:
            if self.server.poll() is not None:
                pytest.fail(f"the server exited with {self.server.returncode}:{self.server_log()}")
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/", timeout=1)
                return  # it answers (what it answers is for the requests to check)
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer within 30 s:{self.server_log()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.server is None or self.server.poll() is not None:
            return
        os.killpg(self.server.pid, signal.SIGTERM)
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait()

    def server_log(self) -> str:
        return f"\n--- server log ---\n{self.log.read_text()}" if self.log.exists() else ""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    if shutil.which("curl") is None:  # pragma: no cover - depends on the machine
        pytest.fail("the pages' first requests use curl: install it (apt-get install curl)")
    project = Project(tmp_path)
    try:
        yield project
    finally:
        project.stop()


@pytest.mark.parametrize("page", PAGES)
def test_the_quick_start_works_as_written(page: str, project: Project) -> None:
    page_steps = steps(page)
    kinds = [s.kind for s in page_steps]
    for kind in ("install", "server", "request", "output"):
        assert kind in kinds, f"{page}.md: its quick start has no {kind} step"
    assert any("consent init" in s.body for s in page_steps if s.kind == "shell")

    for i, step in enumerate(page_steps):
        if step.kind == "install":
            check_install(step.body)
        elif step.kind == "shell":
            project.bash(step.body)
        elif step.kind in {"file", "append"}:
            assert step.arg is not None
            target = project.root / step.arg
            target.parent.mkdir(parents=True, exist_ok=True)
            mode = "a" if step.kind == "append" else "w"
            with target.open(mode, encoding="utf-8") as f:
                f.write(step.body)
        elif step.kind == "server":
            project.start(step.body)
        elif step.kind == "request":
            assert project.server is not None, f"{page}.md: a request before the server starts"
            following = page_steps[i + 1] if i + 1 < len(page_steps) else Step("end", None, "")
            assert following.kind == "output", f"{page}.md: a request without its output"
            actual = project.bash(step.body)
            expected = project.address(following.body)
            assert matches(expected, actual), (
                f"{page}.md: the request\n{step.body}\nprinted\n{actual}\n"
                f"where the page shows\n{following.body}{project.server_log()}"
            )

    # The page's key is a proper one: the short-key warning would be in the server's log.
    assert "signing key is" not in project.log.read_text()


def test_output_lines_match_with_ellipses() -> None:
    assert matches('{"decided":false,...}', '{"decided":false,"granted":[]}\n')
    assert matches("date: ...\nserver: uvicorn\n", "date: Sun, 06 Dec\r\nserver: uvicorn\r\n")
    assert not matches("a\nb", "a\nset-cookie: _ga=1\nb")
    assert not matches('{"analytics":false}', '{"analytics":true}')
    assert not matches("x...", "y")
