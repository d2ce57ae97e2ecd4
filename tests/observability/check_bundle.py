#!/usr/bin/env python3
"""Checks docker/observability against the code: promtool accepts the scrape
config and the alert rules and passes their unit tests; every metric that an
alert or the Grafana dashboard queries is one that nginx's levee_status or
leveed exports; every exported metric is documented in docs/metrics.md.

Exported names are read from the source: leveed declares its metrics with
Metrics::describe/describe_histogram/inc/set, the module writes each family
with PromText::family."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "docker" / "observability"
PROMTOOL = os.environ.get("LEVEE_PROMTOOL", "/opt/levee-tools/prometheus/usr/bin/promtool")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
NAME = re.compile(r"\b(leveed?_[a-z0-9_]*[a-z0-9])\b")


def exported() -> tuple[set[str], set[str]]:
    """(every series name the code exports, the histogram families)."""
    names: set[str] = set()
    histograms: set[str] = set()
    for path in list((ROOT / "sidecar").rglob("*.cpp")) + list((ROOT / "sidecar").rglob("*.hpp")):
        text = path.read_text()
        for m in re.finditer(r'(describe|describe_histogram|inc|set|observe)\(\s*"(leveed_[a-z0-9_]+)"', text):
            names.add(m.group(2))
            if m.group(1) in ("describe_histogram", "observe"):
                histograms.add(m.group(2))
    for path in (ROOT / "ngx_module").rglob("*.cpp"):
        text = path.read_text()
        # PromText::family("NAME", "TYPE", ...) or a table row { "NAME", "TYPE", ...
        for m in re.finditer(r'(?:family\(|\{)\s*"(levee_[a-z0-9_]+)",\s*"(\w+)"', text):
            names.add(m.group(1))
            if m.group(2) == "histogram":
                histograms.add(m.group(1))
    for h in histograms:
        names.update(h + s for s in HISTOGRAM_SUFFIXES)
    return names, histograms


def queried() -> dict[str, set[str]]:
    """Metric names in each alert and dashboard expression, by where."""
    found: dict[str, set[str]] = {}
    rules = (BUNDLE / "alerts.yml").read_text()
    for m in re.finditer(r"^\s*expr:\s*(\|\s*\n((?:\s{10,}.*\n)+)|.*)$", rules, re.M):
        expr = m.group(2) or m.group(1)
        for n in NAME.findall(expr):
            found.setdefault(n, set()).add("alerts.yml")
    dashboard = json.loads((BUNDLE / "grafana" / "dashboards" / "levee.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in dashboard.get("templating", {}).get("list", [])]
    assert exprs, "the dashboard has no queries"
    for e in exprs:
        for n in NAME.findall(e):
            found.setdefault(n, set()).add("levee.json")
    return found


def main() -> int:
    failures: list[str] = []
    if not os.access(PROMTOOL, os.X_OK):
        print(f"{PROMTOOL} missing: run scripts/install-deps.sh", file=sys.stderr)
        return 1
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"],
                 ["test", "rules", "alerts_test.yml"]):
        r = subprocess.run([PROMTOOL, *args], cwd=BUNDLE, capture_output=True, text=True, timeout=60)
        print(f"promtool {' '.join(args)}: {'ok' if r.returncode == 0 else 'FAILED'}")
        if r.returncode != 0:
            failures.append(f"promtool {' '.join(args)}:\n{r.stdout}{r.stderr}")

    names, histograms = exported()
    assert len(names) > 40, f"only {len(names)} exported names found: is the source scan broken?"
    for name, where in sorted(queried().items()):
        if name not in names:
            failures.append(f"{name} (queried in {', '.join(sorted(where))}) is exported by no code")

    documented = set(NAME.findall((ROOT / "docs" / "metrics.md").read_text()))
    for name in sorted(names):
        family = next((h for h in histograms if name in (h + s for s in HISTOGRAM_SUFFIXES)), name)
        if family not in documented:
            failures.append(f"{family} is exported but not in docs/metrics.md")

    for f in sorted(set(failures)):
        print("FAIL:", f)
    print(f"{len(names)} exported series names checked; {len(set(failures))} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
