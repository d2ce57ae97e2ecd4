"""Protocol hardening: a malformed, truncated, oversize or unknown frame
closes that one connection and is counted; every other connection (here:
nginx's workers) keeps working."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.request

import pytest

from harness.wait import wait_until

PLAIN_HTTP = """
    levee_sidecar unix:$sock;
    server { listen 127.0.0.1:$port; location / { return 200 "ok\\n"; } }
"""


def closed_count(leveed, reason: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{leveed.metrics_port}/metrics", timeout=5).read().decode()
    m = re.search(rf'^leveed_connections_closed_total{{reason="{reason}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def send_raw(path: str, data: bytes, close_after: bool = False) -> bytes:
    """Sends bytes on a fresh connection; returns what came back before leveed closed it."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    s.sendall(data)
    if close_after:
        s.shutdown(socket.SHUT_WR)
    got = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    return got


# A valid Hello (field 10, protocol_version 1) as raw bytes, to start a connection properly.
HELLO = bytes([0x52, 0x02, 0x08, 0x01])
HELLO_FRAME = len(HELLO).to_bytes(4, "big") + HELLO

BAD_FRAMES = {
    "malformed": b"\x00\x00\x00\x04\xff\xff\xff\xff",          # not a protobuf message
    "oversize": b"\x7f\xff\xff\xff" + b"x" * 16,                 # 2 GiB announced
    "unknown_type": b"\x00\x00\x00\x03\x98\x06\x01",            # a body from a future protocol
    "no_hello": b"\x00\x00\x00\x04\x62\x02\x0a\x00",             # a probe before hello
}


@pytest.fixture
def stack(make_leveed, make_nginx):
    leveed = make_leveed(metrics=True, extra_config="max_frame_bytes 640k\n")
    nginx = make_nginx(PLAIN_HTTP, workers=2, sock=leveed.socket_path)
    wait_until(lambda: leveed.log().count("hello_accepted") >= 2, timeout=10, message="worker hellos")
    return leveed, nginx


@pytest.mark.parametrize("reason", sorted(BAD_FRAMES))
def test_bad_frame_closes_only_its_connection(stack, reason, levee_build):
    leveed, nginx = stack
    before = closed_count(leveed, reason)
    data = BAD_FRAMES[reason] if reason == "no_hello" else HELLO_FRAME + BAD_FRAMES[reason]
    got = send_raw(leveed.socket_path, data)
    if reason != "no_hello":
        assert got[4:6] == b"\x5a" + bytes([len(got) - 6]), "hello was not answered first"
    wait_until(lambda: closed_count(leveed, reason) == before + 1, timeout=5, message=f"{reason} counted")
    # nginx's connections were not touched: no worker had to reconnect
    assert leveed.log().count("hello_accepted") == 2 + (0 if reason == "no_hello" else 1)
    assert "closed the connection" not in nginx.error_log()
    assert nginx.get("/")[0] == 200
    ok = subprocess.run([levee_build.leveectl, "--socket", leveed.socket_path, "hello"], capture_output=True,
                        timeout=10)
    assert ok.returncode == 0


def test_truncated_frame_is_counted(stack):
    leveed, _ = stack
    before = closed_count(leveed, "truncated")
    send_raw(leveed.socket_path, HELLO_FRAME + b"\x00\x00\x01\x00" + b"partial", close_after=True)
    wait_until(lambda: closed_count(leveed, "truncated") == before + 1, timeout=5, message="truncated counted")


def test_frame_over_max_frame_bytes_is_refused(stack):
    leveed, _ = stack
    before = closed_count(leveed, "oversize")
    send_raw(leveed.socket_path, HELLO_FRAME + (641 * 1024).to_bytes(4, "big") + b"x" * 1024)
    wait_until(lambda: closed_count(leveed, "oversize") == before + 1, timeout=5, message="oversize counted")


def test_garbage_storm_leaves_leveed_serving(stack, levee_build):
    leveed, nginx = stack
    import random
    rnd = random.Random(7)
    for _ in range(200):
        blob = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 64)))
        try:
            send_raw(leveed.socket_path, blob, close_after=True)
        except OSError:
            pass
    assert leveed.pid is not None
    assert nginx.get("/")[0] == 200
    assert subprocess.run([levee_build.leveectl, "--socket", leveed.socket_path, "hello"],
                          capture_output=True, timeout=10).returncode == 0
    time.sleep(0.2)
    assert "closed the connection" not in nginx.error_log()


@pytest.fixture
def short_limits(make_leveed, make_nginx):
    leveed = make_leveed(metrics=True, extra_config="hello_timeout_ms 200\nframe_timeout_ms 200\n")
    nginx = make_nginx(PLAIN_HTTP, workers=2, sock=leveed.socket_path)
    wait_until(lambda: leveed.log().count("hello_accepted") >= 2, timeout=10, message="worker hellos")
    return leveed, nginx


def test_silent_and_half_sent_connections_are_closed_but_idle_nginx_links_stay(short_limits):
    """1024 connections that never say hello (or never finish a frame) must
    not hold leveed's slots for ever; nginx's links, idle between requests
    by design, must stay."""
    leveed, nginx = short_limits
    # Opened after nginx's links: once these are closed, more than the
    # timeouts passed over the links too.
    silent = send_raw(leveed.socket_path, b"")
    assert silent == b"", "leveed answered a connection that said nothing"
    got = send_raw(leveed.socket_path, HELLO_FRAME + b"\x00\x00\x01\x00" + b"partial")
    assert got[4:5] == b"\x5a", "hello was not answered"
    wait_until(lambda: closed_count(leveed, "hello_timeout") == 1, timeout=5, message="hello_timeout counted")
    wait_until(lambda: closed_count(leveed, "frame_timeout") == 1, timeout=5, message="frame_timeout counted")
    assert leveed.log().count("hello_accepted") == 3, "an nginx worker had to reconnect"
    assert "closed the connection" not in nginx.error_log()
    assert nginx.get("/")[0] == 200


def test_connection_limits_are_shown_by_check_config(levee_build, tmp_path):
    conf = tmp_path / "leveed.conf"
    conf.write_text("hello_timeout_ms 1000\nmax_output_bytes 2m\n")
    out = subprocess.run([levee_build.leveed, "--check-config", str(conf)], capture_output=True, text=True,
                         timeout=10)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^hello_timeout_ms +1000$", out.stdout, re.M), out.stdout
    assert re.search(r"^max_output_bytes +2097152$", out.stdout, re.M), out.stdout
    assert re.search(r"^frame_timeout_ms +10000 +# default$", out.stdout, re.M), out.stdout
    assert re.search(r"^max_connection_in_flight +50000 +# default$", out.stdout, re.M), out.stdout
    bad = tmp_path / "bad.conf"
    bad.write_text("frame_timeout_ms 50\n")
    out = subprocess.run([levee_build.leveed, "--check-config", str(bad)], capture_output=True, text=True,
                         timeout=10)
    assert out.returncode != 0
    assert "frame_timeout_ms must be 100..600000" in out.stdout + out.stderr
