"""README's first command: the local stack comes up and shows itself working."""

import os
import shutil
import subprocess
import sys

from harness import build

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_local_stack_starts_and_shows_levee_working():
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "local_stack.py"), "--check",
                        "--build-dir", build.build_dir()], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "levee-demo: BAD" not in r.stdout
    for capability in ("proxy", "rate limit", "sticky", "heartbeat", "presence", "stores"):
        assert f"levee-demo: ok  {capability}:" in r.stdout, capability
    assert "ok=yes" in r.stdout and "redis_value=hello" in r.stdout
    assert "curl http://127.0.0.1:" in r.stdout


def test_local_stack_says_where_its_logs_are_and_keeps_them_when_it_fails(tmp_path):
    # A build folder without leveed: the stack fails while starting.
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "local_stack.py"), "--check",
                        "--build-dir", str(tmp_path)], capture_output=True, text=True, timeout=180)
    assert r.returncode != 0, r.stdout + r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("levee-demo: logs: "), r.stdout
    logs = first.split()[2]
    assert f"levee-demo: FAILED: logs kept in {logs}" in r.stdout, r.stdout + r.stderr
    try:
        assert os.path.isdir(logs) and os.listdir(logs), logs
    finally:
        shutil.rmtree(logs, ignore_errors=True)
