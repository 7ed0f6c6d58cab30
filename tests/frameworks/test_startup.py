"""A misconfigured middleware stops a real uvicorn server from starting, under uvicorn's defaults,
whether the app is wrapped (``ConsentMiddleware(app)``) or Starlette builds the middleware itself
(``Middleware(...)``/``add_middleware``, inside the first call, the lifespan one). A server without
lifespan answers 500 and logs why."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from .helpers import EXAMPLES, KEY, POLICY, loopback_listener

#: One app module, three ways of mounting the middleware (``MOUNT``); its inner app has a
#: lifespan of its own, which writes ``STARTED`` to a file when it runs.
APP = textwrap.dedent(
    """
    import contextlib
    import os

    from fastapi import FastAPI
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from consent import ConsentMiddleware

    OPTIONS = {"policy": os.environ["POLICY"], "store": os.environ["STORE"]}


    @contextlib.asynccontextmanager
    async def lifespan(app):
        with open(os.environ["MARKER"], "a") as out:
            out.write("started\\n")
        yield


    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("home")


    mount = os.environ["MOUNT"]
    if mount == "wrapped":
        app = ConsentMiddleware(
            Starlette(routes=[Route("/", home)], lifespan=lifespan), **OPTIONS
        )
    elif mount == "middleware":
        app = Starlette(
            routes=[Route("/", home)],
            lifespan=lifespan,
            middleware=[Middleware(ConsentMiddleware, **OPTIONS)],
        )
    else:
        app = FastAPI(lifespan=lifespan)
        app.add_api_route("/", home)
        app.add_middleware(ConsentMiddleware, **OPTIONS)
    """
)

MOUNTS = ["wrapped", "middleware", "add_middleware"]


def _environment(tmp_path: Path, mount: str, **extra: str) -> dict[str, str]:
    (tmp_path / "startup_app.py").write_text(APP)
    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
        "MOUNT": mount,
        "POLICY": str(POLICY),
        "STORE": "memory://",
        "MARKER": str(tmp_path / "marker"),
        "CONSENT_SECRET_KEY": KEY,
        **extra,
    }
    if not env["CONSENT_SECRET_KEY"]:
        del env["CONSENT_SECRET_KEY"]
    return env


def _start(
    tmp_path: Path,
    env: dict[str, str],
    *options: str,
    app_dir: Path | None = None,
    target: str = "startup_app:app",
) -> tuple[subprocess.Popen[bytes], str, Path]:
    log = tmp_path / "server.log"
    sock, port = loopback_listener(16)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(app_dir or tmp_path),
        "--fd",
        str(sock.fileno()),
        *options,
        target,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, pass_fds=[sock.fileno()], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    sock.close()
    return process, f"http://127.0.0.1:{port}", log


def _wait_until_running(process: subprocess.Popen[bytes], log: Path) -> None:
    """Until uvicorn says it serves (a request sent before then may time out in the socket's
    backlog and still be answered, later)."""
    deadline = time.monotonic() + 30
    while "Uvicorn running on" not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
            process.kill()
            process.wait()


def _exit_code(process: subprocess.Popen[bytes], log: Path) -> int:
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        _stop(process)
        pytest.fail(f"uvicorn kept running with a misconfigured middleware:\n{log.read_text()}")


@pytest.mark.parametrize("mount", MOUNTS)
def test_without_a_key_uvicorn_exits_non_zero_with_the_reason(tmp_path: Path, mount: str) -> None:
    env = _environment(tmp_path, mount, CONSENT_SECRET_KEY="")
    process, _, log = _start(tmp_path, env)  # uvicorn's defaults: --lifespan auto
    code = _exit_code(process, log)
    output = log.read_text()
    assert code != 0, output
    assert "asgi-consent cannot start" in output
    assert "CONSENT_SECRET_KEY" in output
    assert "Application startup failed. Exiting." in output
    assert "lifespan' protocol appears unsupported" not in output
    # the app's own lifespan never ran: nothing of it was started, nothing to shut down
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize(
    ("mount", "setting", "said"),
    [
        ("wrapped", {"STORE": "bogus://x"}, "unsupported receipt store URL 'bogus://x'"),
        ("add_middleware", {"STORE": "bogus://x"}, "unsupported receipt store URL 'bogus://x'"),
        ("middleware", {"POLICY": "/nonexistent/policy"}, "invalid cookie policy"),
        ("add_middleware", {"POLICY": "/nonexistent/policy"}, "/nonexistent/policy: not a dir"),
    ],
)
def test_a_configuration_error_stops_uvicorn(
    tmp_path: Path, mount: str, setting: dict[str, str], said: str
) -> None:
    process, _, log = _start(tmp_path, _environment(tmp_path, mount, **setting))
    code = _exit_code(process, log)
    output = log.read_text()
    assert code != 0, output
    assert said in output
    error_lines = [line for line in output.splitlines() if "asgi-consent cannot start" in line]
    # printed once, by uvicorn from the lifespan message: the operator reads it one time
    assert len(error_lines) == 1, output
    assert error_lines[0].startswith("ERROR:"), output


def test_django_without_lifespan_support_still_stops_on_a_configuration_error(
    tmp_path: Path,
) -> None:
    """Django's handler raises on a lifespan scope (uvicorn then calls lifespan unsupported and
    goes on); a misconfigured middleware answers the lifespan itself, before Django sees it."""
    env = _environment(tmp_path, "wrapped", CONSENT_STORE="bogus://x")
    process, _, log = _start(
        tmp_path, env, app_dir=EXAMPLES / "django_site", target="lindenhof.asgi:application"
    )
    code = _exit_code(process, log)
    output = log.read_text()
    assert code != 0, output
    assert "asgi-consent cannot start: unsupported receipt store URL 'bogus://x'" in output
    assert "Application startup failed. Exiting." in output


@pytest.mark.parametrize("mount", MOUNTS)
def test_a_configured_middleware_passes_the_apps_lifespan_through(
    tmp_path: Path, mount: str
) -> None:
    process, base, log = _start(tmp_path, _environment(tmp_path, mount))
    try:
        _wait_until_running(process, log)
        response = httpx.get(base + "/", timeout=5)
        assert response.status_code == 200
        assert response.text == "home"
    finally:
        _stop(process)
    assert process.returncode in (0, -signal.SIGTERM), log.read_text()
    assert (tmp_path / "marker").read_text() == "started\n"
    assert "Application startup complete" in log.read_text()
    assert "Application shutdown complete" in log.read_text()


@pytest.mark.parametrize("mount", ["wrapped", "add_middleware"])
def test_without_lifespan_each_request_is_a_500_and_a_log_line(tmp_path: Path, mount: str) -> None:
    env = _environment(tmp_path, mount, CONSENT_SECRET_KEY="")
    process, base, log = _start(tmp_path, env, "--lifespan", "off")
    try:
        _wait_until_running(process, log)
        first = httpx.get(base + "/", timeout=5)
        second = httpx.get(base + "/_consent", timeout=5)
    finally:
        _stop(process)
    for response in (first, second):
        assert response.status_code == 500
        assert response.text == "Internal Server Error"  # no detail for the visitor
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
    output = log.read_text()
    answered = [line for line in output.splitlines() if "(answered 500)" in line]
    assert len(answered) == 2, output
    assert all("CONSENT_SECRET_KEY" in line for line in answered)
