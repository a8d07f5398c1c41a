"""`audience-sync serve --demo` as a new user starts it: a real process, driven over its socket."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_demo_syncs_four_audiences_and_answers_with_its_key(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "AUDIENCE_SYNC_DATABASE_URL": f"sqlite:///{tmp_path}/demo.db",
        "AUDIENCE_SYNC_VAR_DIR": str(tmp_path / "var"),
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "audience_sync.cli", "serve", "--demo", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while "Uvicorn running" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        text = log.read_text()
        key = re.search(r"API key \(shown once\): (as_\S+)", text)
        assert key is not None, text
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key.group(1)}"}
        audiences = httpx.get(f"{base}/api/v1/audiences", headers=headers, timeout=10).json()
        assert sorted(a["platform"] for a in audiences) == ["google", "meta", "snapchat", "tiktok"]
        assert {a["last_sync_status"] for a in audiences} == {"completed"}
        held = httpx.get(f"{base}/sandbox/_sandbox/audiences?identifiers=false", timeout=10)
        assert sorted(a["platform"] for a in held.json()) == [
            "google",
            "meta",
            "snapchat",
            "tiktok",
        ]
        assert httpx.get(f"{base}/api/v1/audiences", timeout=10).status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
