"""Real servers and a real browser: `esafety serve --demo` in a subprocess, driven by
Debian's Chromium through Playwright (no browser download: ``executable_path``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.pg import free_port

CHROMIUM = os.environ.get("ESAFETY_CHROMIUM", "/usr/bin/chromium")
#: Screenshots land here when set (the lead looks at them), else in the test's tmp dir.
SCREENSHOTS = os.environ.get("ESAFETY_SCREENSHOTS")


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.output)


@pytest.fixture
def server(tmp_path: Path, database_url: str | None) -> Iterator[RunningServer]:
    port = free_port()
    env = {
        **os.environ,
        "ESAFETY_DATA": str(tmp_path / "data"),
        "ESAFETY_SECURITY__ARGON2_TIME_COST": "1",
        "ESAFETY_SECURITY__ARGON2_MEMORY_KIB": "8",
        "ESAFETY_SECURITY__ARGON2_PARALLELISM": "1",
        "COLUMNS": "200",
        "ESAFETY_DNS__PORT": "0",  # the DNS filter on any free port: tests run side by side
    }
    env.pop("ESAFETY_DATABASE_URL", None)
    if database_url is not None:
        env["ESAFETY_DATABASE_URL"] = database_url
    else:
        # The database fixture put a migrated copy here; start from nothing, as a newcomer does.
        (tmp_path / "esafety.db").unlink(missing_ok=True)
    esafety = shutil.which("esafety", path=str(Path(sys.executable).parent)) or "esafety"
    process = subprocess.Popen(
        [esafety, "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = RunningServer(f"http://127.0.0.1:{port}", process)
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: running.output.extend(process.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    deadline = time.monotonic() + 90
    try:
        while True:
            if process.poll() is not None:
                reader.join(timeout=5)
                process.stdout.close()
                pytest.fail(f"esafety serve exited with {process.returncode}:\n{running.text}")
            try:
                if httpx.get(running.url + "/sign-in", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"esafety serve did not answer within 90 s:\n{running.text}")
            time.sleep(0.2)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=5)
        process.stdout.close()


# Package scope, not session: while sync Playwright is open an event loop runs in
# the main thread, and tests outside e2e that call asyncio.run (esafety serve in
# process) would fail after it.
@pytest.fixture(scope="package")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
