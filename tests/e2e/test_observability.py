"""A real Prometheus (Debian's, unpacked by scripts/install-deps.sh) scrapes
nginx's levee_status and leveed's /metrics with the bundle's alert rules
loaded, and answers a metric of each process through its query API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

from harness.leveed import wait_linked
from harness.ports import free_port
from harness.wait import wait_until

PROMETHEUS = os.environ.get("LEVEE_PROMETHEUS", "/opt/levee-tools/prometheus/usr/bin/prometheus")
BUNDLE = Path(__file__).resolve().parents[2] / "docker" / "observability"


def query(port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.load(r)
    except OSError:
        return []
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_prometheus_scrapes_both_processes(make_leveed, make_nginx, tmp_path):
    assert os.access(PROMETHEUS, os.X_OK), f"{PROMETHEUS} missing: run scripts/install-deps.sh"
    leveed = make_leveed(metrics=True)
    ngx = make_nginx("""
        levee_sidecar unix:$sock;
        levee_limit_zone api key=$arg_k rate=10r/s size=1m;
        server {
            listen 127.0.0.1:$port;
            location = /levee-status { levee_status; }
        }
    """, workers=2, sock=leveed.socket_path)
    wait_linked(leveed, ngx)

    shutil.copy(BUNDLE / "alerts.yml", tmp_path / "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml]
scrape_configs:
  - job_name: levee-nginx
    metrics_path: /levee-status
    static_configs: [{{targets: ["127.0.0.1:{ngx.port}"]}}]
  - job_name: leveed
    static_configs: [{{targets: ["127.0.0.1:{leveed.metrics_port}"]}}]
""")
    port = free_port()
    log = open(tmp_path / "prometheus.log", "w")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        def scraped() -> bool:
            nginx = query(port, 'levee_sidecar_link_up{job="levee-nginx"}')
            side = query(port, 'leveed_build_info{job="leveed"}')
            return len(nginx) == 2 and all(r["value"][1] == "1" for r in nginx) and len(side) == 1
        try:
            wait_until(scraped, timeout=60, interval=0.5, message="Prometheus has both processes' metrics")
        except Exception:
            print((tmp_path / "prometheus.log").read_text()[-3000:])
            raise
        targets = query(port, "up")
        assert {r["metric"]["job"]: r["value"][1] for r in targets} == {"levee-nginx": "1", "leveed": "1"}
        rules = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5))
        names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
        assert "LeveeSidecarLinkDown" in names and "LeveedRedisUnreachable" in names
    finally:
        prom.terminate()
        prom.wait(timeout=30)
        log.close()
