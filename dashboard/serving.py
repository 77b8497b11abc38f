"""The dashboard as a separate ``streamlit run`` process on a free local port, and the headless chromium that
drives it: one place for both, shared by the browser tests and the dashboard benchmarks."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"
REPO = APP.parents[1]
CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium package; nothing is downloaded
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(env: dict[str, str], log: Path | None = None, timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """Start the app with environment ``env`` (output to ``log``, else discarded) and wait until its health
    endpoint answers; returns the process and its URL. RuntimeError (with the log's tail) when it does not
    start within ``timeout`` seconds; the process is then killed."""
    port = free_port()
    out = open(log, "wb") if log else subprocess.DEVNULL
    try:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
                                 "--server.address", "127.0.0.1", "--server.headless", "true",
                                 "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    finally:
        if log:
            out.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            tail = log.read_text(errors="replace")[-3000:] if log else "(no log kept)"
            raise RuntimeError(f"streamlit did not start:\n{tail}")
        time.sleep(0.3)


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate the app, killing it when it does not exit within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def open_page(playwright, width: int, height: int = 1000, timeout_ms: int = 600_000):
    """A page of a new headless chromium (Debian's, with :data:`CHROMIUM_ARGS`) at ``width`` x ``height`` px,
    whose waits time out after ``timeout_ms`` (benchmarks wait for real work, not for a test's patience); every
    request off this machine is blocked (:func:`new_page`)."""
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    return new_page(browser, width, height, timeout_ms)


#: Every request a page of :func:`new_page` tried to send off this machine (blocked): browser tests fail on any
#: (``tests/conftest.py`` checks it after each test), since the app must work offline with what it ships.
OUTSIDE_REQUESTS: list[str] = []
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


def is_local(url: str) -> bool:
    """Whether ``url`` stays on this machine: the app's own server (loopback), or data the page already holds
    (``data:``, ``blob:``, ``about:``, a ``file:`` report)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "file", "chrome-error"):
        return True
    return parts.hostname in LOCAL_HOSTS


def block_outside(context):
    """Route every request of a Playwright browser context: local ones go on, any other is aborted and recorded in
    :data:`OUTSIDE_REQUESTS`. Works with both Playwright APIs: with the sync one it returns None; with the async one
    it returns the coroutine to await (``await block_outside(ctx)``), and the handler's coroutines are awaited by
    Playwright."""
    def route(r):
        url = r.request.url
        if is_local(url):
            return r.continue_()
        OUTSIDE_REQUESTS.append(url)
        return r.abort()

    return context.route("**/*", route)


def new_page(browser, width: int, height: int = 1000, timeout_ms: int = 60_000):
    """A page ``width`` x ``height`` px in a new context of ``browser`` that cannot reach beyond this machine
    (:func:`block_outside`); waits time out after ``timeout_ms``. Every browser test opens its pages here."""
    context = browser.new_context(viewport={"width": width, "height": height})
    block_outside(context)
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    return page
