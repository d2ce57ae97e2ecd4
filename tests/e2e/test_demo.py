"""README's first command: the local stack comes up and shows itself working."""

import os
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
