"""leveed talks TLS to a Redis Cluster that listens with TLS only (issue 15):
``redis_tls``, ``redis_tls_ca_file``, ``redis_tls_cert_file``,
``redis_tls_key_file``, ``redis_tls_server_name``.

The cluster (conftest's ``redis_tls_cluster``) has no plaintext port, wants
a client certificate (``tls-auth-clients yes``) and a password: AUTH is
shown working inside TLS. Verified against the node's address (IP SAN
127.0.0.1) or against one name every node's certificate carries; another
CA, a wrong name, no client certificate or ``redis_tls off`` get nothing
written, and what leveed sends through a relay in front of a node is TLS
from its first byte, the password never in clear. A failover is followed
over TLS. ``--check-config`` names a CA or key file it cannot use."""

from __future__ import annotations

import re
import subprocess
import uuid

import pytest

from harness.levee_keys import limit_key, presence_key, probe_key
from harness.leveed import Leveed, wait_linked
from harness.redis_cluster import TLS_SERVER_NAME
from harness.tcp_relay import TcpRelay
from harness.wait import wait_until

# A space inside, as in test_redis_auth.py: AUTH carries it as one argument.
PASSWORD = "levee-tls s3cret"

# What OpenSSL says when it refuses a peer's certificate: the handshake's
# error, or X509_verify_cert_error_string's reason. A node sends its CA
# along (OpenSSL builds the chain from tls-ca-cert-file), so another CA
# meets "self-signed certificate in certificate chain", not "unable to get
# local issuer certificate"; a name the certificate lacks, "hostname
# mismatch" or "IP address mismatch".
VERIFY_FAILED = re.compile(r"certificate verify failed|unable to get local issuer certificate"
                           r"|self[- ]signed certificate|hostname mismatch|IP address mismatch", re.I)

# A TLS record of type handshake (22), protocol major version 3: how every
# TLS connection's first bytes (the ClientHello) begin.
TLS_HANDSHAKE = b"\x16\x03"


@pytest.fixture(scope="module")
def redis_tls_password():
    return PASSWORD


def tls_settings(tls_files, **over) -> dict:
    """leveed's settings for the TLS cluster; a key given None is left out."""
    s = {"redis_tls": "on", "redis_tls_ca_file": tls_files.ca, "redis_tls_cert_file": tls_files.client_cert,
         "redis_tls_key_file": tls_files.client_key, "redis_password": PASSWORD}
    s.update(over)
    return {k: v for k, v in s.items() if v is not None}


def leveectl(levee_build, leveed, *args: str) -> list[str]:
    return [levee_build.leveectl, "--socket", leveed.socket_path, "--admin-socket", leveed.admin_socket_path,
            *args]


def wait_ready(leveed) -> None:
    """leveed has its slot map (CLUSTER SLOTS answered over TLS): a probe's
    ``redis_node`` is named from it."""
    leveed.wait_for_log(r"\bredis_cluster_ready\b", timeout=15)


def probe(levee_build, leveed, key: str, value: str) -> tuple[dict, str]:
    """``leveectl probe``'s fields and whole output. No database here: the
    probe's ``ok`` is no ("no database configured"); its Redis half is
    ``redis_value`` and the ``error`` text."""
    r = subprocess.run(leveectl(levee_build, leveed, "probe", key, value), capture_output=True, text=True,
                       timeout=40)
    return fields(r.stdout), r.stdout + r.stderr


def fields(out: str) -> dict:
    return dict(line.split("=", 1) for line in out.strip().splitlines() if "=" in line)


def assert_written(cluster, key: str, value: str, got: dict, out: str) -> None:
    assert got.get("redis_value") == value, out
    assert "redis" not in got.get("error", ""), out
    # read back on our own, over TLS
    assert cluster.cli(cluster.master_for_key(probe_key(key)), "GET", probe_key(key)) == value


def assert_nothing_written(cluster, key: str, got: dict, out: str) -> None:
    assert got.get("ok") == "no" and got.get("redis_value") == "", out
    assert "redis" in got.get("error", ""), out
    assert cluster.cli(cluster.master_for_key(probe_key(key)), "EXISTS", probe_key(key)) == "0"


def assert_tls_only(relay: TcpRelay) -> None:
    """Whatever leveed sent through ``relay`` was TLS from the first byte,
    and neither the password nor a command crossed in clear."""
    sent = [c for c in relay.sent() if c]
    assert sent, "leveed sent nothing through the relay"
    for c in sent:
        assert c.startswith(TLS_HANDSHAKE), c[:64]
        assert PASSWORD.encode() not in c and b"AUTH" not in c and b"CLUSTER" not in c, c[:200]


# ---------------------------------------------------------------- verified TLS

@pytest.mark.parametrize("server_name", [None, TLS_SERVER_NAME], ids=["node-address", "server-name"])
def test_probe_and_beat_reach_every_master_over_verified_tls_with_auth(
        redis_tls_cluster, tls_files, make_leveed, levee_build, server_name):
    cluster = redis_tls_cluster
    d = make_leveed(redis_seeds=cluster.seeds[:1],
                    settings=tls_settings(tls_files, redis_tls_server_name=server_name))
    wait_ready(d)
    # one key per master: a TLS connection to each, each opened with AUTH
    for port, key in cluster.key_for_each_master(f"tls-probe-{server_name}-").items():
        got, out = probe(levee_build, d, key, f"value-of-{key}")
        assert got["redis_node"] == f"127.0.0.1:{port}", out
        assert_written(cluster, key, f"value-of-{key}", got, out)

    user = f"tls-user-{uuid.uuid4().hex[:8]}"
    r = subprocess.run(leveectl(levee_build, d, "beat", user), capture_output=True, text=True, timeout=40)
    assert r.returncode == 0 and "ok=yes" in r.stdout, r.stdout + r.stderr
    key = presence_key(user)
    assert cluster.cli(cluster.master_for_key(key), "ZSCORE", key, user) != ""

    log = d.log()
    assert "s3cret" not in log
    assert "redis_auth_failed" not in log and not VERIFY_FAILED.search(log), log


def test_the_password_crosses_only_inside_tls(redis_tls_cluster, tls_files, make_leveed, levee_build):
    cluster = redis_tls_cluster
    with TcpRelay(cluster.ports[0]) as relay:
        # the relay is leveed's only seed: its first connection, AUTH and
        # CLUSTER SLOTS cross it (later ones go to the nodes CLUSTER SLOTS names)
        d = make_leveed(redis_seeds=[relay.addr], settings=tls_settings(tls_files))
        key = "tls-relayed"
        got, out = probe(levee_build, d, key, "through-the-relay")
        assert_written(cluster, key, "through-the-relay", got, out)
        d.stop()
        assert_tls_only(relay)


def test_a_global_limit_through_nginx_keeps_its_bucket_in_the_tls_cluster(
        redis_tls_cluster, tls_files, make_leveed, make_nginx):
    conf = """
        levee_sidecar unix:$sock;
        levee_limit_zone g key=$http_x_key rate=1r/m burst=1 scope=global sync=100ms size=1m;
        server {
            listen 127.0.0.1:$back;
            location / { return 200 "ok\\n"; }
        }
        server {
            listen 127.0.0.1:$port;
            # levee_limit runs in the preaccess phase: a `return` here
            # would answer before it
            location / { levee_limit g nodelay; proxy_pass http://127.0.0.1:$back; }
        }
    """
    cluster = redis_tls_cluster
    d = make_leveed(redis_seeds=cluster.seeds, settings=tls_settings(tls_files))
    ngx = make_nginx(conf, ports=("port", "back"), sock=d.socket_path)
    wait_linked(d, ngx)
    key = uuid.uuid4().hex
    assert ngx.get("/", headers={"X-Key": key})[0] == 200
    bucket = limit_key("g", key, 60000000, 2)    # 1 r/m, burst=1
    tat = wait_until(lambda: cluster.cli(cluster.master_for_key(bucket), "GET", bucket), timeout=10,
                     message="the bucket in the TLS cluster")
    assert int(tat) > 0


# ---------------------------------------------------------------- refused

# Each case's leveed has one seed, a relay in front of a node: all it sends
# crosses the relay. Each probe waits out leveed's retries (up to its
# max_retry_ms, 15 s) before failing upward: the cases run side by side.
REFUSED = {
    "other-ca": lambda t: tls_settings(t, redis_tls_ca_file=t.other_ca),
    "wrong-server-name": lambda t: tls_settings(t, redis_tls_server_name="wrong.levee.test"),
    "no-client-certificate": lambda t: tls_settings(t, redis_tls_cert_file=None, redis_tls_key_file=None),
    "tls-off": lambda t: {"redis_password": PASSWORD},
}


@pytest.fixture(scope="module")
def refused(redis_tls_cluster, tls_files, levee_build):
    """{case: (leveed, relay, probe fields, probe output)} for REFUSED."""
    started: list = []
    try:
        runs = {}
        for case, settings in REFUSED.items():
            relay = TcpRelay(redis_tls_cluster.ports[0]).start()
            started.append(relay)
            d = Leveed(levee_build.leveed, redis_seeds=[relay.addr], settings=settings(tls_files))
            started.append(d)
            d.start()
            runs[case] = (d, relay, subprocess.Popen(leveectl(levee_build, d, "probe", f"tls-{case}", "never"),
                                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        results = {}
        for case, (d, relay, p) in runs.items():
            out, _ = p.communicate(timeout=40)
            results[case] = (d, relay, fields(out), out)
        yield results
    finally:
        for c in reversed(started):
            c.stop()


@pytest.mark.parametrize("case", list(REFUSED))
def test_nothing_is_written_without_a_verified_tls_session(redis_tls_cluster, refused, case):
    d, relay, got, out = refused[case]
    assert_nothing_written(redis_tls_cluster, f"tls-{case}", got, out)
    assert d.pid, "leveed exited: it must keep running (and retrying)"
    assert "redis_cluster_ready" not in d.log()
    assert PASSWORD not in d.log() and "s3cret" not in out


@pytest.mark.parametrize("case", ["other-ca", "wrong-server-name"])
def test_leveed_says_the_certificate_was_refused(refused, case):
    d, _relay, _got, out = refused[case]
    assert VERIFY_FAILED.search(d.log()) or VERIFY_FAILED.search(out), d.log()[-3000:] + out


@pytest.mark.parametrize("case", ["other-ca", "wrong-server-name", "no-client-certificate"])
def test_a_refused_tls_session_never_falls_back_to_plaintext(refused, case):
    _d, relay, _got, _out = refused[case]
    assert_tls_only(relay)


def test_tls_off_sends_plaintext_the_tls_port_refuses(refused):
    # also shows the relay sees a password sent in clear: assert_tls_only
    # above would have caught one
    d, relay, got, out = refused["tls-off"]
    sent = b"".join(relay.sent())
    assert b"AUTH" in sent and PASSWORD.encode() in sent and not sent.startswith(TLS_HANDSHAKE), sent[:200]
    assert re.search(r"\bredis_node_down node=127\.0\.0\.1:%d\b" % relay.port, d.log()), d.log()[-3000:]
    assert relay.addr in got["error"], out


# ---------------------------------------------------------------- failover

def test_a_failover_is_followed_over_tls(redis_tls_cluster, tls_files, make_leveed, levee_build):
    cluster = redis_tls_cluster
    d = make_leveed(redis_seeds=cluster.seeds, settings=tls_settings(tls_files))
    wait_ready(d)
    victim = cluster.masters()[0][0]
    key = cluster.key_for_each_master("tls-failover-")[victim]
    got, out = probe(levee_build, d, key, "before")
    assert got["redis_node"] == f"127.0.0.1:{victim}", out
    assert_written(cluster, key, "before", got, out)

    cluster.kill_node(victim)
    try:
        cluster.wait_ok(20)     # a replica took over
        promoted = cluster.master_for_key(probe_key(key))
        assert promoted != victim
        # leveed finds the promoted replica's TLS port (CLUSTER SLOTS,
        # MOVED) and opens a verified, authenticated session to it
        got, out = probe(levee_build, d, key, "after")
        assert_written(cluster, key, "after", got, out)
    finally:
        cluster.restart_node(victim)
        cluster.wait_ok(30, require_all=True)


# ---------------------------------------------------------------- --check-config

@pytest.mark.parametrize("missing", ["redis_tls_ca_file", "redis_tls_cert_file", "redis_tls_key_file"])
def test_check_config_names_a_tls_file_it_cannot_read(levee_build, tls_files, tmp_path, missing):
    conf = tmp_path / "leveed.conf"
    absent = str(tmp_path / f"absent-{missing}.pem")
    settings = tls_settings(tls_files, **{missing: absent})
    del settings["redis_password"]
    conf.write_text("socket /tmp/levee-tls.sock\nredis 127.0.0.1:7000\n"
                    + "".join(f"{k} {v}\n" for k, v in settings.items()))
    r = subprocess.run([levee_build.leveed, "--check-config", str(conf)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1, r.stdout + r.stderr
    assert absent in r.stderr, r.stderr


@pytest.mark.parametrize("given, needs", [("redis_tls_cert_file", "redis_tls_key_file"),
                                          ("redis_tls_key_file", "redis_tls_cert_file")])
def test_check_config_wants_the_client_certificate_and_its_key_together(levee_build, tls_files, tmp_path,
                                                                          given, needs):
    conf = tmp_path / "leveed.conf"
    path = tls_files.client_cert if given == "redis_tls_cert_file" else tls_files.client_key
    conf.write_text(f"socket /tmp/levee-tls.sock\nredis 127.0.0.1:7000\nredis_tls on\n"
                    f"redis_tls_ca_file {tls_files.ca}\n{given} {path}\n")
    r = subprocess.run([levee_build.leveed, "--check-config", str(conf)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1, r.stdout + r.stderr
    assert needs in r.stderr, r.stderr


def test_check_config_takes_the_tls_settings(levee_build, tls_files, tmp_path):
    conf = tmp_path / "leveed.conf"
    settings = tls_settings(tls_files, redis_tls_server_name=TLS_SERVER_NAME)
    del settings["redis_password"]
    conf.write_text("socket /tmp/levee-tls.sock\nredis 127.0.0.1:7000\n"
                    + "".join(f"{k} {v}\n" for k, v in settings.items()))
    r = subprocess.run([levee_build.leveed, "--check-config", str(conf)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r.stderr
    for k, v in settings.items():
        assert re.search(rf"^{k} +{re.escape(v)}$", r.stdout, re.M), (k, r.stdout)
