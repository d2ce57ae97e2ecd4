#!/usr/bin/env python3
"""leveed's write path: presence records sent over its Unix socket (the way
nginx workers send them) and written into a real 6-node Redis Cluster, beside
redis-benchmark's pipelined SET ceiling against the same cluster, in one run.

    python3 tests/bench/sidecar_bench.py [--build-dir build] [--seconds 8] [--rounds 3]

Prints a table of median records/s; the ratio column is against
`redis-benchmark --cluster -P 32 -t set`.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))

from harness.leveed import Leveed  # noqa: E402
from harness.mongo_db import MongoDatabase  # noqa: E402
from harness.redis_cluster import RedisCluster  # noqa: E402


def redis_benchmark(cluster: RedisCluster, seconds: int) -> float:
    port = cluster.seeds[0].split(":")[1]
    n = 400_000 * seconds
    r = subprocess.run(["redis-benchmark", "--cluster", "-h", "127.0.0.1", "-p", port, "-t", "set", "-P", "32",
                        "-c", "50", "-n", str(n), "-r", "100000", "-q"],
                       capture_output=True, text=True, timeout=seconds * 10 + 60)
    m = re.search(r"SET: ([\d.]+) requests per second", r.stdout + r.stderr)
    if not m:
        raise RuntimeError(f"redis-benchmark: {r.stdout} {r.stderr}")
    return float(m.group(1))


def leveed_bench(leveed_load: str, leveed: Leveed, seconds: int, batch: int, in_flight: int) -> float:
    r = subprocess.run([leveed_load, "--socket", leveed.socket_path, "presence", str(seconds), str(batch),
                        str(in_flight), "100000"], capture_output=True, text=True, timeout=seconds + 120)
    m = re.search(r"records_per_s=(\d+)", r.stdout)
    if r.returncode != 0 or not m:
        raise RuntimeError(f"leveed_load presence: {r.stdout} {r.stderr}")
    return float(m.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=2000, help="records per PresenceBatch frame (the module sends what one flush window coalesced)")
    ap.add_argument("--in-flight", type=int, default=32, help="unacknowledged batches at most")
    args = ap.parse_args()
    leveed_bin = os.path.join(args.build_dir, "sidecar", "leveed")
    leveed_load = os.path.join(args.build_dir, "tests", "bench", "leveed_load")

    cluster = RedisCluster().start()
    mongo = None
    daemons: list[Leveed] = []
    try:
        try:
            mongo = MongoDatabase().start()
        except Exception as e:  # noqa: BLE001
            print(f"(no database: {e}; the spool row is skipped)")
        cases = [
            ("leveed, WAIT 1 (default)", {}),
            ("leveed, no WAIT", {"redis_wait_replicas": 0}),
        ]
        if mongo is not None:
            cases.append(("leveed, WAIT 1 + spool (database set)", {"mongo_flush_ms": 1000}))
        results: dict[str, list[float]] = {name: [] for name, _ in cases}
        results["redis-benchmark --cluster -P 32 SET"] = []
        for rnd in range(args.rounds):
            results["redis-benchmark --cluster -P 32 SET"].append(redis_benchmark(cluster, args.seconds))
            for name, settings in cases:
                mongo_uri = mongo.uri if "spool" in name else None
                d = Leveed(leveed_bin, redis_seeds=cluster.seeds, mongo_uri=mongo_uri, log_level="warn",
                           settings=settings).start()
                daemons.append(d)
                results[name].append(leveed_bench(leveed_load, d, args.seconds, args.batch, args.in_flight))
                d.stop()
            print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
        ceiling = statistics.median(results["redis-benchmark --cluster -P 32 SET"])
        print(f"\n{'case':<42} {'records/s (median)':>20} {'x redis-benchmark':>18}")
        for name, values in results.items():
            med = statistics.median(values)
            print(f"{name:<42} {med:>20,.0f} {med / ceiling:>18.2f}")
        print(f"\n{args.rounds} rounds of {args.seconds} s, batch {args.batch}, {args.in_flight} batches in flight, "
              f"100k distinct users, 3 masters + 3 replicas on 127.0.0.1, {os.cpu_count()} cores")
        return 0
    finally:
        for d in daemons:
            d.stop()
        if mongo is not None:
            mongo.stop()
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
