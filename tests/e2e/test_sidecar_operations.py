"""Operating leveed: Prometheus metrics and health on loopback, SIGHUP
reopens the log (logrotate), one log line per event with key=value fields."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import urllib.error
import urllib.request

from harness.wait import wait_until


def get(leveed, path: str) -> tuple[int, str]:
    try:
        r = urllib.request.urlopen(f"http://127.0.0.1:{leveed.metrics_port}{path}", timeout=5)
        return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_metrics_cover_frames_redis_and_refusals(redis_cluster, make_leveed, levee_build):
    leveed = make_leveed(redis_seeds=redis_cluster.seeds, metrics=True)
    for user in ("m1", "m2", "m3"):
        r = subprocess.run([levee_build.leveectl, "--socket", leveed.socket_path, "beat", user],
                           capture_output=True, timeout=30)
        assert r.returncode == 0
    # Redis client counts are published by a 100 ms housekeeping timer
    wait_until(lambda: "leveed_redis_node_commands_total{" in get(leveed, "/metrics")[1], timeout=5,
               message="Redis counts in /metrics")
    status, text = get(leveed, "/metrics")
    assert status == 200
    assert re.search(r'^leveed_frames_in_total\{type="presence_batch"\} 3$', text, re.M), text
    assert re.search(r'^leveed_frames_out_total\{type="presence_ack"\} 3$', text, re.M)
    assert re.search(r'^leveed_hello_total\{result="accepted"\} 3$', text, re.M)
    assert re.search(r'^leveed_redis_node_commands_total\{node="127\.0\.0\.1:\d+"\} [1-9]', text, re.M)
    for family in ("leveed_redis_slot_refreshes_total", "leveed_redis_refused_full_total",
                   "leveed_redis_errors_total", "leveed_connections_closed_total", "leveed_up"):
        assert f"# TYPE {family} " in text, family
    assert get(leveed, "/health") == (200, "ok\n")
    assert get(leveed, "/ready") == (200, "ready\n")
    assert re.search(r'^leveed_build_info\{version="\d+\.\d+\.\d+[^"]*"\} 1$', text, re.M), text
    assert get(leveed, "/nope")[0] == 404
    assert get(leveed, "/readyz")[0] == 404
    assert re.search(r'^leveed_redis_up 1$', text, re.M), text
    assert re.search(r'^leveed_redis_command_duration_seconds_count [1-9]', text, re.M), text
    assert re.search(r'^leveed_frame_duration_seconds_count\{type="presence_ack"\} 3$', text, re.M), text


def test_ready_while_redis_is_away(make_leveed):
    """A store fault is a metric with an alert, not a reason to take the edge
    out of a load balancer: leveed still serves nginx (fail modes, spool)."""
    leveed = make_leveed(redis_seeds=["127.0.0.1:1"], metrics=True)
    assert get(leveed, "/health") == (200, "ok\n")
    assert get(leveed, "/ready") == (200, "ready\n")
    assert re.search(r'^leveed_redis_up 0$', get(leveed, "/metrics")[1], re.M)


def test_sighup_reopens_the_log_file(make_leveed, levee_build):
    leveed = make_leveed()
    rotated = leveed.log_file + ".1"
    os.rename(leveed.log_file, rotated)
    leveed.send_signal(signal.SIGHUP)
    wait_until(lambda: os.path.exists(leveed.log_file), timeout=5, message="a new log file")
    subprocess.run([levee_build.leveectl, "--socket", leveed.socket_path, "hello"], capture_output=True, timeout=10)
    wait_until(lambda: "hello_accepted" in open(leveed.log_file).read(), timeout=5, message="logging to the new file")
    assert "log_reopened" in open(leveed.log_file).read()
    assert "hello_accepted" not in open(rotated).read()


def test_log_lines_are_level_event_and_fields(make_leveed):
    leveed = make_leveed()
    for line in leveed.log().splitlines():
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info|warn|error) [a-z_]+( [a-z_]+=\S+)*",
                        line), line
