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
        while (key := re.search(r"Sign in with this key: (as_\S+)", log.read_text())) is None:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        assert f"Dashboard: {base}/" in log.read_text()
        headers = {"Authorization": f"Bearer {key.group(1)}"}
        audiences = httpx.get(f"{base}/api/v1/audiences", headers=headers, timeout=10).json()
        assert sorted(a["platform"] for a in audiences) == ["google", "meta", "snapchat", "tiktok"]
        assert {a["last_sync_status"] for a in audiences} == {"completed"}
        for audience in audiences:  # a create, then two rounds of churn and update
            jobs = httpx.get(
                f"{base}/api/v1/audiences/{audience['id']}/jobs", headers=headers, timeout=10
            ).json()
            assert [job["operation"] for job in jobs].count("update") == 2, jobs
        held = httpx.get(f"{base}/sandbox/_sandbox/audiences?identifiers=false", timeout=10)
        assert sorted(a["platform"] for a in held.json()) == [
            "google",
            "meta",
            "snapchat",
            "tiktok",
        ]
        assert httpx.get(f"{base}/api/v1/audiences", timeout=10).status_code == 401
        drive_like_a_client(base, headers)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def drive_like_a_client(base: str, headers: dict[str, str]) -> None:
    """Create an audience, let its sync finish, read health, export and download."""
    with httpx.Client(base_url=f"{base}/api/v1", headers=headers, timeout=30) as api:
        segments = {s["name"]: s["id"] for s in api.get("/segments").json()}
        created = api.post(
            "/audiences",
            json={
                "segment_id": segments["High Value Customers"],
                "platform": "snapchat",
                "platform_audience_name": "HV on Snapchat",
                "ad_account_id": "1234567890",
                "sync_interval_hours": 6,
            },
        )
        assert created.status_code == 201, created.text
        audience_id, job_id = created.json()["id"], created.json()["sync_job"]["id"]
        deadline = time.monotonic() + 60
        while (job := api.get(f"/sync-jobs/{job_id}").json())["status"] in ("pending", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job["status"] == "completed", job
        assert job["profiles_added"] > 1_000
        health = api.get(f"/audiences/{audience_id}/health").json()
        assert health["sync_success_rate"] == 1.0
        assert health["platform_size"] > 0
        export = api.post(
            f"/segments/{segments['High Value Customers']}/export",
            json={"format": "csv", "identifier_types": ["email"], "platform": "snapchat"},
        )
        assert export.status_code in (200, 201), export.text
        link = export.json()["download_url"]
    downloaded = httpx.get(link if link.startswith("http") else base + link, timeout=30)
    assert downloaded.status_code == 200
    lines = downloaded.text.splitlines()
    assert lines[0].startswith('"profile_id"')  # every field quoted (formula-safe CSV)
    assert len(lines) == export.json()["profile_count"] + 1
    assert "@" not in downloaded.text  # hashed, as Snapchat's upload would be
