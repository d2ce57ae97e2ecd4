"""leveed against a Redis Cluster that requires a password (``requirepass``
and ``masterauth`` on every node): AUTH on every connection, the password
from the file or from LEVEE_REDIS_PASSWORD (which wins), an ACL user, and a
wrong password failing in bounded time with ``redis_auth_failed`` in the log
and never the password. ``--check-config`` names the line of bad settings."""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.request

import pytest

from harness import build
from harness.levee_keys import presence_key, probe_key
from harness.redis_cluster import RedisCluster

# A space inside: AUTH must carry it as one argument, the config file keep it.
PASSWORD = "levee-auth s3cret"
WRONG = "wrong-pass-7f3a91"

# Without a slot map a command retries for leveed's max_retry_ms (15 s),
# then fails upward; leveectl itself gives up after 30 s.
PROBE_BOUND_S = 25


@pytest.fixture(scope="module")
def auth_cluster():
    """A 3-master / 3-replica cluster of its own, every node with PASSWORD
    (the session's ``redis_cluster`` has none)."""
    rc = RedisCluster(n_masters=3, replicas=1, password=PASSWORD)
    try:
        rc.start()
        yield rc
    finally:
        rc.stop()


def leveectl(levee_build, leveed, *args: str, timeout: float = 40) -> subprocess.CompletedProcess:
    return subprocess.run([levee_build.leveectl, "--socket", leveed.socket_path,
                           "--admin-socket", leveed.admin_socket_path, *args],
                          capture_output=True, text=True, timeout=timeout)


def probe_ok(levee_build, leveed, cluster, key: str, value: str) -> None:
    r = leveectl(levee_build, leveed, "probe", key, value)
    assert r.returncode == 0, r.stdout + r.stderr
    out = dict(line.split("=", 1) for line in r.stdout.strip().splitlines())
    assert out["redis_value"] == value, r.stdout
    # read back on its own, with the password
    assert cluster.cli(cluster.master_for_key(probe_key(key)), "GET", probe_key(key)) == value


def metric(leveed, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{leveed.metrics_port}/metrics", timeout=5).read().decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def without_password_env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "LEVEE_REDIS_PASSWORD"}


# ---------------------------------------------------------------- the right password

def test_the_cluster_refuses_clients_without_the_password(auth_cluster):
    port = auth_cluster.master_for_key("k")
    r = subprocess.run(["redis-cli", "-p", str(port), "GET", "k"], capture_output=True, text=True, timeout=10)
    assert "NOAUTH" in r.stdout + r.stderr, r.stdout + r.stderr


def test_password_from_the_file_probe_and_beat_on_every_master(auth_cluster, mongo_db, make_leveed, levee_build):
    d = make_leveed(redis_seeds=auth_cluster.seeds[:1], mongo_uri=mongo_db.uri, metrics=True,
                    settings={"redis_password": PASSWORD})
    # one key per master: a connection to each, each opened with AUTH
    for port, key in auth_cluster.key_for_each_master("auth-probe-").items():
        probe_ok(levee_build, d, auth_cluster, key, f"value-of-{key}")

    r = leveectl(levee_build, d, "beat", "auth-user")
    assert r.returncode == 0 and "ok=yes" in r.stdout, r.stdout + r.stderr
    key = presence_key("auth-user")
    assert auth_cluster.cli(auth_cluster.master_for_key(key), "ZSCORE", key, "auth-user") != ""

    assert re.search(r"\bstarted .*redis_auth=password\b", d.log()), d.log()
    assert metric(d, "leveed_redis_auth_failures_total") == 0
    assert "s3cret" not in d.log()
    assert "redis_auth_failed" not in d.log()


def test_password_from_the_environment_wins_over_the_file(auth_cluster, mongo_db, make_leveed, levee_build):
    d = make_leveed(redis_seeds=auth_cluster.seeds[:1], mongo_uri=mongo_db.uri, settings={"redis_password": WRONG},
                    env={"LEVEE_REDIS_PASSWORD": PASSWORD})
    probe_ok(levee_build, d, auth_cluster, "auth-env", "from-env")
    assert "redis_auth_failed" not in d.log()
    assert "s3cret" not in d.log() and WRONG not in d.log()


def test_an_acl_user(auth_cluster, mongo_db, make_leveed, levee_build):
    # ACLs are per node, not spread by the cluster: every node learns the user
    for port in auth_cluster.ports:
        auth_cluster.cli(port, "ACL", "SETUSER", "levee", "on", ">acl-pass", "~*", "&*", "+@all", check=True)
    d = make_leveed(redis_seeds=auth_cluster.seeds[:1], mongo_uri=mongo_db.uri,
                    settings={"redis_user": "levee", "redis_password": "acl-pass"})
    probe_ok(levee_build, d, auth_cluster, "auth-acl", "as-levee")
    assert re.search(r'\bstarted .*redis_auth="user levee"', d.log()), d.log()


def test_the_stress_tool_takes_the_password_from_the_environment(auth_cluster):
    path = os.path.join(build.build_dir(), "tests", "unit", "sidecar", "redis", "redis_cluster_stress")
    assert os.path.isfile(path), f"{path} not built"
    argv = [path, "--seeds", auth_cluster.seeds_csv, "--seconds", "2", "--keys", "200", "--verify",
            "--prefix", "auth-stress-"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=90,
                       env={**without_password_env(), "LEVEE_REDIS_PASSWORD": PASSWORD})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    result = re.search(r"^RESULT (.*)$", r.stdout, re.M)
    assert result, r.stdout[-3000:]
    fields = dict(kv.split("=", 1) for kv in result.group(1).split())
    assert fields["verified"] == "yes" and fields["lost_writes"] == "0", result.group(0)
    assert int(fields["acked"]) > 0, result.group(0)


# ---------------------------------------------------------------- a refused AUTH

@pytest.mark.parametrize("which", ["wrong password", "server without a password"])
def test_refused_auth_fails_the_probe_in_bounded_time_and_logs_no_password(
        which, request, mongo_db, make_leveed, levee_build):
    # Redis answers WRONGPASS to the one, "ERR AUTH <password> called without
    # any password configured" to the other
    cluster = request.getfixturevalue("auth_cluster" if which == "wrong password" else "redis_cluster")
    d = make_leveed(redis_seeds=cluster.seeds[:1], mongo_uri=mongo_db.uri, metrics=True,
                    settings={"redis_password": WRONG})
    assert d.pid, "leveed must start (and keep retrying) with a refused password"

    start = time.monotonic()
    r = leveectl(levee_build, d, "probe", "auth-refused", "never-written")
    took = time.monotonic() - start
    assert r.returncode == 1, r.stdout + r.stderr
    assert took < PROBE_BOUND_S, f"the probe took {took:.1f}s"
    assert "ok=no" in r.stdout and "AUTH failed" in r.stdout, r.stdout
    assert cluster.cli(cluster.master_for_key("auth-refused"), "EXISTS", "auth-refused") == "0"

    expected = "WRONGPASS" if which == "wrong password" else "ERR AUTH"
    m = d.wait_for_log(r"\berror redis_auth_failed node=127\.0\.0\.1:(\d+) error=\"?" + expected)
    assert int(m.group(1)) in cluster.ports
    assert metric(d, "leveed_redis_auth_failures_total") >= 1
    assert d.pid, "leveed exited"
    log = d.log()
    assert WRONG not in log, "the password is in leveed's log"
    # once per node, not once per reconnect
    assert len(re.findall(r"redis_auth_failed node=127\.0\.0\.1:" + m.group(1) + r"\b", log)) == 1, log


def test_sighup_takes_a_corrected_password_without_a_restart(auth_cluster, mongo_db, make_leveed, levee_build):
    d = make_leveed(redis_seeds=auth_cluster.seeds[:1], mongo_uri=mongo_db.uri, settings={"redis_password": WRONG})
    d.wait_for_log(r"\berror redis_auth_failed node=")
    pid = d.pid
    reloaded = d.reload({"redis_password": PASSWORD})
    assert re.search(r"config_reloaded changed=redis_password restart_needed=-$", reloaded, re.M), reloaded
    # the next reconnect (within the reconnect backoff) sends the new AUTH
    probe_ok(levee_build, d, auth_cluster, "auth-reloaded", "after-sighup")
    assert d.pid == pid, "the same process, not a restart"
    assert WRONG not in d.log() and PASSWORD not in d.log()


# ---------------------------------------------------------------- --check-config

GOOD_PREFIX = "socket /tmp/levee-auth.sock\nredis 127.0.0.1:7000\n# the secret\n"


@pytest.mark.parametrize("bad_line, reason", [
    ("redis_password", '"redis_password" needs a value'),
    ("redis_password    ", '"redis_password" needs a value'),
    ("redis_password hunter#2", "give such a password in LEVEE_REDIS_PASSWORD"),
    ("redis_password hunter2   # prod", "give such a password in LEVEE_REDIS_PASSWORD"),
    ("redis_user two words", "redis_user must be one word"),
])
def test_check_config_reports_the_line_of_a_bad_auth_setting(levee_build, tmp_path, bad_line, reason):
    conf = tmp_path / "leveed.conf"
    conf.write_text(GOOD_PREFIX + bad_line + "\nlog_level info\n")
    r = subprocess.run([levee_build.leveed, "--check-config", str(conf)], capture_output=True, text=True,
                       timeout=10, env=without_password_env())
    assert r.returncode == 1, r.stdout + r.stderr
    assert any(line.startswith(f"{conf}:4: ") and reason in line for line in r.stderr.splitlines()), r.stderr
    assert "hunter" not in r.stderr, "the password is in the error"


def test_check_config_needs_a_password_for_a_user_and_reads_the_environment(levee_build, tmp_path):
    conf = tmp_path / "leveed.conf"
    conf.write_text(GOOD_PREFIX + "redis_user levee\n")
    r = subprocess.run([levee_build.leveed, "--check-config", str(conf)], capture_output=True, text=True,
                       timeout=10, env=without_password_env())
    assert r.returncode == 1 and "redis_user is set but no password" in r.stderr, r.stderr
    r = subprocess.run([levee_build.leveed, "--check-config", str(conf)], capture_output=True, text=True,
                       timeout=10, env={**without_password_env(), "LEVEE_REDIS_PASSWORD": "from-env"})
    assert r.returncode == 0, r.stderr
    conf.write_text(GOOD_PREFIX + "redis_user levee\nredis_password two words ok\n")
    r = subprocess.run([levee_build.leveed, "--check-config", str(conf)], capture_output=True, text=True,
                       timeout=10, env=without_password_env())
    assert r.returncode == 0, r.stderr
