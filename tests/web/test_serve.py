"""`esafety serve` runs the app on a local port and prints the address."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ESAFETY = Path(sys.executable).with_name("esafety")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_prints_the_address_and_answers(inst, cli_env):
    port = _free_port()
    env = {**os.environ, **cli_env, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [str(ESAFETY), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/sign-in", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert response.status_code == 200
        assert "Sign in to esafety" in response.text
        assert response.headers["x-frame-options"] == "DENY"
    finally:
        process.terminate()
        process.wait(timeout=20)
        if process.stdout is not None:
            process.stdout.close()


def test_serve_demo_creates_the_demo_school_and_says_how_to_sign_in(inst, cli_env):
    port = _free_port()
    env = {**os.environ, **cli_env, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [str(ESAFETY), "serve", "--port", str(port), "--demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        printed = []
        for line in process.stdout:
            printed.append(line)
            if "is running at" in line:
                break
        text = "".join(printed)
        assert "demo.dsl" in text
        assert f"http://127.0.0.1:{port}/" in text
    finally:
        process.terminate()
        process.wait(timeout=20)
        if process.stdout is not None:
            process.stdout.close()
