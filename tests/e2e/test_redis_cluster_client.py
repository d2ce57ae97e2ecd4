"""leveed's Redis Cluster client against a real cluster while its topology
changes: a master killed with SIGKILL, a master frozen, slots migrated. The
stream of writes never stops for good and no acknowledged write is lost."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time

from harness import build
from harness.redis_cluster import key_hash_slot


def stress_binary() -> str:
    path = os.path.join(build.build_dir(), "tests", "unit", "sidecar", "redis", "redis_cluster_stress")
    assert os.path.isfile(path), f"{path} not built"
    return path


def run_stress(cluster, seconds: int, keys: int, prefix: str, extra=(), during=None):
    proc = subprocess.Popen([stress_binary(), "--seeds", cluster.seeds_csv, "--seconds", str(seconds),
                             "--keys", str(keys), "--verify", "--prefix", prefix, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    worker = None
    if during is not None:
        worker = threading.Thread(target=during)
        worker.start()
    out, _ = proc.communicate(timeout=seconds + 60)
    if worker is not None:
        worker.join()
    m = re.search(r"^RESULT (.*)$", out, re.M)
    assert m, out
    result = dict(kv.split("=", 1) for kv in m.group(1).split())
    return proc.returncode, result, out


def per_second(out: str) -> list[int]:
    return [int(x) for x in re.findall(r"acked/s=(\d+)", out)]


def test_stream_survives_a_master_killed_with_sigkill(make_redis_cluster):
    cluster = make_redis_cluster()
    victim = cluster.masters()[0][0]

    def kill_later():
        time.sleep(2)
        cluster.kill_node(victim)

    # WAIT 1 after each pipelined batch: an acknowledged write is on a replica
    # too, so the promoted replica has it.
    rc, result, out = run_stress(cluster, 12, 2000, "kill:", ["--wait-replicas", "1"], during=kill_later)
    assert rc == 0, out
    assert int(result["lost_writes"]) == 0 and int(result["lost_keys"]) == 0 and result["verified"] in ("yes", "true", "1"), out
    # the stream came back: the last seconds acknowledged writes again
    rates = per_second(out)
    assert len(rates) >= 10 and min(rates[-3:]) > 0, out
    # the client saw the master go and found its replica promoted
    assert int(result["conn_errors"]) + int(result["timeouts"]) > 0, out
    assert int(result["refreshes"]) > 1, out
    assert victim not in [port for port, _id, _r in cluster.masters()]


def test_no_write_lost_or_duplicated_while_slots_migrate(make_redis_cluster):
    cluster = make_redis_cluster()
    masters = cluster.masters()
    src, dst = masters[0][0], masters[1][0]
    lo, hi = masters[0][2][0]
    slots = list(range(lo, min(lo + 40, hi + 1)))
    moved: list[int] = []

    def migrate():
        time.sleep(1)
        for s in slots:
            cluster.migrate_slot(s, src, dst)
            moved.append(s)

    rc, result, out = run_stress(cluster, 8, 20000, "mig:", during=migrate)
    assert rc == 0, out
    assert int(result["lost_writes"]) == 0 and int(result["lost_keys"]) == 0 and result["verified"] in ("yes", "true", "1"), out
    assert moved == slots
    assert all(cluster.owner_of_slot(s) == dst for s in slots)
    # the client was redirected, and the keys of the moved slots are all on dst
    assert int(result.get("moved", 0)) + int(result.get("ask", 0)) > 0, out
    keys_on_dst = [f"mig:{i}" for i in range(20000) if key_hash_slot(f"mig:{i}") in set(slots)]
    assert keys_on_dst
    for k in keys_on_dst[:50]:
        assert cluster.cli(dst, "EXISTS", k) == "1", k


def test_live_client_unit_tests_against_the_cluster(redis_cluster):
    """The GoogleTest cases that need a real cluster (skipped in the unit run)."""
    binary = os.path.join(build.build_dir(), "tests", "unit", "sidecar", "redis", "levee_redis_unit_tests")
    r = subprocess.run([binary, "--gtest_filter=ClusterClientLive.*"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "LEVEE_REDIS_SEEDS": redis_cluster.seeds_csv})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[  PASSED  ] 1 test" in r.stdout and "SKIPPED" not in r.stdout, r.stdout
