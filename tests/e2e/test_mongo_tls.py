"""leveed talks TLS to the database: libmongoc's TLS options in the `mongo`
URI, against FerretDB's TLS listener (FerretDB v1.24.2, built by
scripts/install-deps.sh). The certificate is verified: a CA that did not sign
the server's certificate gets nothing written, and neither does plain TCP to
the TLS port."""

from __future__ import annotations

import os
import subprocess

import pytest

from harness.ports import free_port
from harness.tls_certs import make_tls_files
from harness.wait import wait_until

FERRETDB = os.path.join(os.environ.get("LEVEE_TOOLS_DIR", "/opt/levee-tools"), "ferretdb", "bin", "ferretdb")


@pytest.fixture
def tls_database(tmp_path):
    assert os.access(FERRETDB, os.X_OK), f"{FERRETDB} missing: run scripts/install-deps.sh"
    tls = make_tls_files(tmp_path)
    port = free_port()
    (tmp_path / "data").mkdir()
    log = open(tmp_path / "ferretdb.log", "w")
    proc = subprocess.Popen([FERRETDB, "--handler=sqlite", f"--sqlite-url=file:{tmp_path / 'data'}/",
                             "--listen-addr=", f"--listen-tls=127.0.0.1:{port}",
                             f"--listen-tls-cert-file={tls.server_cert}",
                             f"--listen-tls-key-file={tls.server_key}",
                             "--telemetry=disable", f"--state-dir={tmp_path / 'data'}", "--debug-addr=-",
                             "--log-level=warn"], stdout=log, stderr=subprocess.STDOUT)
    try:
        import socket
        wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True,
                   timeout=30, ignore_exceptions=True, message="FerretDB's TLS listener")
        yield tmp_path, port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def probe(levee_build, leveed) -> subprocess.CompletedProcess:
    # leveectl finds leveed's admin socket from its nginx socket
    return subprocess.run([levee_build.leveectl, "--socket", leveed.socket_path, "probe", "tls-key", "tls-value"],
                          capture_output=True, text=True, timeout=60)


def test_leveed_writes_to_the_database_over_verified_tls(tls_database, redis_cluster, make_leveed, levee_build):
    d, port = tls_database
    leveed = make_leveed(redis_seeds=redis_cluster.seeds,
                         mongo_uri=f"mongodb://127.0.0.1:{port}/?tls=true&tlsCAFile={d / 'ca.pem'}")
    r = probe(levee_build, leveed)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok=yes" in r.stdout and "tls-value" in r.stdout.split("document=")[1], r.stdout


@pytest.mark.parametrize("uri,why", [
    ("mongodb://127.0.0.1:{port}/?tls=true&tlsCAFile={d}/other-ca.pem", "certificate verify failed"),
    ("mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=2000", "Failed to read"),
], ids=["unknown-ca", "plain-tcp"])
def test_nothing_is_written_without_a_verified_tls_session(tls_database, redis_cluster, make_leveed, levee_build,
                                                           uri, why):
    d, port = tls_database
    leveed = make_leveed(redis_seeds=redis_cluster.seeds, mongo_uri=uri.format(port=port, d=d))
    r = probe(levee_build, leveed)
    assert r.returncode != 0, r.stdout
    assert "document=\n" in r.stdout and why in r.stdout, r.stdout
