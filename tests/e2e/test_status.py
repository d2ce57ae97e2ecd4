"""levee_status: nginx's own metrics in the Prometheus text format, counted
in shared memory so that whichever worker answers the scrape gives the whole
instance; accepted by promtool; counters survive a reload."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from harness.leveed import wait_linked
from harness.wait import wait_until

PROMTOOL = os.environ.get("LEVEE_PROMTOOL", "/opt/levee-tools/prometheus/usr/bin/promtool")

CONF = """
    levee_sidecar unix:$sock;
    levee_limit_zone api key=$arg_k rate=1r/m burst=2 size=1m;
    levee_heartbeat_zone size=4m;
    upstream backend {
        levee_sticky key=$arg_uid;
        server $a;
        server $b;
    }
    server {
        listen 127.0.0.1:$port;
        location /api/ { levee_limit api nodelay; proxy_pass http://backend; }
        location /app/ { proxy_pass http://backend; }
        location = /hb { levee_heartbeat key=$arg_u ttl=60s interval=30s flush=100ms; }
        location = /metrics { levee_status; }
    }
"""


def scrape(ngx) -> str:
    status, headers, body = ngx.get("/metrics")
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain; version=0.0.4"), headers
    return body.decode()


def value(text: str, series: str) -> float:
    m = re.search(r"^" + re.escape(series) + r" (\S+)$", text, re.M)
    assert m, f"{series} not in\n{text}"
    return float(m.group(1))


def promtool_check(text: str) -> None:
    assert os.access(PROMTOOL, os.X_OK), f"{PROMTOOL} missing: run scripts/install-deps.sh"
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture
def stack(make_leveed, make_nginx, make_upstream):
    leveed = make_leveed()
    a, b = make_upstream("a"), make_upstream("b")
    ngx = make_nginx(CONF, workers=2, sock=leveed.socket_path, a=a.addr, b=b.addr)
    wait_linked(leveed, ngx)
    return leveed, ngx, a, b


def test_counts_every_worker_and_passes_promtool(stack):
    leveed, ngx, a, b = stack
    # 5 requests for one key at 1r/m with burst=2: 3 pass, 2 are refused,
    # spread over both workers by separate connections.
    codes = [ngx.get("/api/x?k=one&uid=u1")[0] for _ in range(5)]
    assert codes.count(200) == 3 and codes.count(429) == 2, codes
    for uid in ("u1", "u2", "u3", "u4"):
        assert ngx.get(f"/app/?uid={uid}")[0] == 200
    for user in ("h1", "h2", "h3"):
        assert ngx.get(f"/hb?u={user}")[0] == 204

    wait_until(lambda: value(scrape(ngx), "levee_heartbeat_records_flushed_total") == 3, timeout=10,
               message="3 beats flushed to leveed")
    # several scrapes reach both workers: each sees the same totals
    for _ in range(4):
        text = scrape(ngx)
        assert value(text, 'levee_limit_requests_total{zone="api",outcome="passed"}') == 3
        assert value(text, 'levee_limit_requests_total{zone="api",outcome="rejected"}') == 2
        assert value(text, 'levee_limit_requests_total{zone="api",outcome="delayed"}') == 0
        assert value(text, 'levee_limit_keys{zone="api"}') == 1
        assert value(text, 'levee_limit_new_keys_over_budget_total{zone="api"}') == 0
        assert value(text, 'levee_limit_long_keys_total{zone="api",action="hash"}') == 0
        assert value(text, 'levee_limit_long_keys_total{zone="api",action="refuse"}') == 0
        assert value(text, 'levee_limit_shm_size_bytes{zone="api"}') == 1024 * 1024
        assert 0 < value(text, 'levee_limit_shm_used_bytes{zone="api"}') <= 1024 * 1024
        picks = sum(float(v) for v in re.findall(r'^levee_sticky_picks_total\{upstream="backend",server="[^"]+"\} (\S+)$',
                                                  text, re.M))
        assert picks == 3 + 4, text   # the 3 passed /api/ requests and 4 /app/ ones
        assert value(text, "levee_heartbeats_absorbed_total") == 3
        assert value(text, "levee_heartbeat_flush_batch_records_count") >= 1
        assert value(text, "levee_heartbeat_flush_batch_records_sum") == 3
        assert value(text, 'levee_sidecar_link_up{worker="0"}') == 1
        assert value(text, 'levee_sidecar_link_up{worker="1"}') == 1
        assert value(text, 'levee_sidecar_frames_sent_total{worker="0"}') + \
            value(text, 'levee_sidecar_frames_sent_total{worker="1"}') >= 2
        assert re.search(r'^levee_build_info\{version="[^"]+",nginx_version="1\.\d+\.\d+"\} 1$', text, re.M)
    promtool_check(text)


def test_link_down_and_counters_kept_over_reload(stack):
    leveed, ngx, a, b = stack
    for _ in range(3):
        ngx.get("/api/x?k=two")
    before = value(scrape(ngx), 'levee_limit_requests_total{zone="api",outcome="passed"}')
    assert before == 3
    ngx.reload()
    wait_linked(leveed, ngx)
    ngx.get("/api/x?k=two")   # the 4th: refused, counted after the reload
    text = scrape(ngx)
    assert value(text, 'levee_limit_requests_total{zone="api",outcome="passed"}') == 3
    assert value(text, 'levee_limit_requests_total{zone="api",outcome="rejected"}') == 1
    leveed.stop()
    wait_until(lambda: value(scrape(ngx), 'levee_sidecar_link_up{worker="0"}') == 0
               and value(scrape(ngx), 'levee_sidecar_link_up{worker="1"}') == 0,
               timeout=10, message="link_up 0 once leveed is gone")
    text = scrape(ngx)
    assert value(text, 'levee_sidecar_disconnects_total{worker="0"}') >= 1
    promtool_check(text)


def test_alone_it_shows_build_info_only(make_nginx):
    ngx = make_nginx("""
        server {
            listen 127.0.0.1:$port;
            location = /metrics { levee_status; }
        }
    """, workers=1)
    text = scrape(ngx)
    assert "levee_build_info{" in text
    assert "levee_limit_" not in text and "levee_heartbeat" not in text
    promtool_check(text)
    assert ngx.request("POST", "/metrics")[0] == 405


def test_refuses_arguments(make_nginx):
    ngx = make_nginx("""
        server {
            listen 127.0.0.1:$port;
            location = /metrics { levee_status on; }
        }
    """, start=False)
    rc, err = ngx.test_config()
    assert rc != 0
    assert 'invalid number of arguments in "levee_status" directive' in err
    assert "nginx.conf:" in err
