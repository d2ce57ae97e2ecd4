"""leveed's Redis Cluster client against a real cluster while its topology
changes: a master killed with SIGKILL, a master frozen, slots migrated. The
stream of writes never stops for good and no acknowledged write is lost; the
connection to a master that left the cluster is closed."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
import urllib.request

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


def test_leveed_closes_the_connection_to_a_master_that_left(make_redis_cluster, mongo_db, make_leveed, levee_build):
    """A master killed and failed over leaves the slot map: leveed drops its
    connection (it would otherwise keep one per node it ever saw)."""
    cluster = make_redis_cluster()
    masters = [port for port, _id, _r in cluster.masters()]
    victim, seed = masters[0], masters[1]
    d = make_leveed(redis_seeds=[f"127.0.0.1:{seed}"], mongo_uri=mongo_db.uri, metrics=True)

    def probe(key: str) -> None:
        r = subprocess.run([levee_build.leveectl, "--socket", d.socket_path, "--admin-socket", d.admin_socket_path,
                            "probe", key, "v"], capture_output=True, text=True, timeout=40)
        assert r.returncode == 0 and "redis_value=v" in r.stdout, r.stdout + r.stderr

    # a connection to every master
    keys = cluster.key_for_each_master("departed-")
    for key in keys.values():
        probe(key)
    wait_metric(d, "leveed_redis_node_connections", 3)
    assert metric(d, "leveed_redis_connections_retired_total") == 0
    victim_node = f"127.0.0.1:{victim}"
    wait_for(lambda: victim_node in node_series(d, "leveed_redis_node_commands_total"),
             f"no series for {victim_node} before the kill")

    cluster.kill_node(victim)
    cluster.wait_ok(timeout=30)
    # the victim's slots are served by its promoted replica; the probe finds it
    probe(keys[victim])
    d.wait_for_log(r"\binfo redis_node_retired node=127\.0\.0\.1:%d\b" % victim, timeout=20)
    wait_metric(d, "leveed_redis_connections_retired_total", 1)
    # the seed, the other master, the promoted replica
    wait_metric(d, "leveed_redis_node_connections", 3)
    assert re.findall(r"redis_node_retired node=(\S+)", d.log()) == [victim_node], d.log()[-3000:]
    # its per-node series leave /metrics with it; those of live nodes stay
    for family in ("leveed_redis_node_commands_total", "leveed_redis_node_errors_total"):
        wait_for(lambda: victim_node not in node_series(d, family),
                 f"{family}{{node=\"{victim_node}\"}} is still in /metrics after the retirement")
    assert f"127.0.0.1:{seed}" in node_series(d, "leveed_redis_node_commands_total")


def metrics_text(leveed) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{leveed.metrics_port}/metrics", timeout=5).read().decode()


def node_series(leveed, family: str) -> set[str]:
    """The node labels of a per-node family's series."""
    return set(re.findall(rf'^{re.escape(family)}{{node="([^"]+)"}} ', metrics_text(leveed), re.M))


def wait_for(condition, message: str, timeout: float = 20) -> None:
    """Metrics are published on leveed's housekeeping tick: poll, bounded."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert condition(), message


def metric(leveed, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", metrics_text(leveed), re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def wait_metric(leveed, name: str, want: float, timeout: float = 20) -> None:
    wait_for(lambda: metric(leveed, name) == want, f"{name} != {want}", timeout)
