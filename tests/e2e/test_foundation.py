"""The foundation: the module loads into Debian's nginx, `levee_sidecar` is
validated by `nginx -t`, leveed starts, negotiates, drains, and every nginx
worker keeps (and regains) its link to leveed; leveed reaches every Redis
master and the database."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import threading
import time

import pytest

from harness.levee_keys import probe_key
from harness.wait import wait_until

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PLAIN_HTTP = """
    levee_sidecar unix:$sock;
    server {
        listen 127.0.0.1:$port;
        location / { return 200 "ok\\n"; }
    }
"""


def hellos(leveed) -> dict[int, int]:
    """{nginx worker pid: number of hellos accepted} from leveed's log."""
    seen: dict[int, int] = {}
    for m in re.finditer(r"hello_accepted .*client=ngx_http_levee_module\S* pid=(\d+)", leveed.log()):
        pid = int(m.group(1))
        seen[pid] = seen.get(pid, 0) + 1
    return seen


# ---------------------------------------------------------------- nginx -t

def test_shipped_nginx_config_passes_nginx_t(levee_build, tmp_path):
    text = open(os.path.join(REPO, "conf", "nginx-levee.conf")).read()
    text = text.replace("load_module modules/ngx_http_levee_module.so;",
                        f"load_module {levee_build.module};")
    assert levee_build.module in text
    text = text.replace("/var/log/nginx/error.log", str(tmp_path / "error.log"))
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    r = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "e.log")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "test is successful" in r.stderr


def _example_files() -> list[str]:
    out = [os.path.join(REPO, "README.md"), os.path.join(REPO, "scripts", "local_stack.py")]
    for folder in ("conf", "docs", "docker"):
        d = os.path.join(REPO, folder)
        out += [os.path.join(d, f) for f in sorted(os.listdir(d))
                if f.endswith((".conf", ".md", ".template"))]
    return out


def test_every_example_keeps_the_presence_query_closed():
    """Presence is personal data: every location in the examples and docs
    that answers it restricts who may ask (allow/deny or internal)."""
    found = 0
    for path in _example_files():
        text = open(path).read()
        # the directive itself, not prose that names it
        for m in re.finditer(r"^\s*(?:location[^{]*\{)?[^\n`|]*\blevee_presence\b[^;\n`]*;", text, re.M):
            start = text.rfind("location", 0, m.end())
            end = text.find("}", m.end())
            block = text[start:end]
            assert "deny all" in block or "internal" in block, f"{path}: {block!r}"
            found += 1
    assert found >= 3


@pytest.mark.parametrize("directive, reason", [
    ("levee_sidecar tcp://127.0.0.1:9000;", "only unix domain sockets are supported"),
    ("levee_sidecar 127.0.0.1:9000;", "only unix domain sockets are supported"),
    ("levee_sidecar unix:;", 'missing socket path after "unix:"'),
    ("levee_sidecar unix:run/leveed.sock;", "socket path must be absolute"),
    ("levee_sidecar unix:/" + "a" * 120 + ";", "longer than 107 bytes"),
    ("levee_sidecar;", 'invalid number of arguments in "levee_sidecar" directive'),
    ("levee_sidecar unix:/a.sock;\n levee_sidecar unix:/b.sock;", '"levee_sidecar" directive is duplicate'),
])
def test_bad_levee_sidecar_fails_nginx_t_with_file_line_and_reason(make_nginx, directive, reason):
    n = make_nginx(directive + '\nserver { listen 127.0.0.1:$port; location / { return 204; } }', start=False)
    rc, err = n.test_config()
    assert rc != 0, err
    assert reason in err, err
    # the line of the offending directive in the generated file
    lines = n.config_text.splitlines()
    bad_line = max(i for i, l in enumerate(lines, 1) if "levee_sidecar" in l)
    assert f"in {n.conf_path}:{bad_line}" in err, err


def test_levee_sidecar_outside_http_is_refused(make_nginx):
    n = make_nginx('server { listen 127.0.0.1:$port; levee_sidecar unix:/tmp/x.sock; }', start=False)
    rc, err = n.test_config()
    assert rc != 0
    assert '"levee_sidecar" directive is not allowed here' in err, err


# ---------------------------------------------------------------- leveed alone

def test_check_config_reports_each_error_with_its_line(levee_build, tmp_path):
    good = tmp_path / "good.conf"
    # the log directory is systemd's LogsDirectory=, absent here: --check-config
    # checks that leveed could open its log, as start does
    good.write_text(open(os.path.join(REPO, "conf", "leveed.conf")).read()
                    .replace("/var/log/levee/", f"{tmp_path}/"))
    r = subprocess.run([levee_build.leveed, "--check-config", str(good)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    bad = tmp_path / "bad.conf"
    bad.write_text("socket relative.sock\n# fine\nredis nowhere\nfrobnicate yes\nsocket_mode 0660\n")
    r = subprocess.run([levee_build.leveed, "--check-config", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    errors = r.stderr.strip().splitlines()
    assert [e.split(":")[1] for e in errors] == ["1", "3", "4"], r.stderr
    assert f"{bad}:4: unknown setting \"frobnicate\"" in r.stderr


def test_command_line_overrides_the_file(make_leveed, levee_build, tmp_path):
    d = make_leveed(start=False)
    in_file = d.socket_path
    other = os.path.join(d.dir, "other.sock")
    d.args = ["--socket", other]
    d.socket_path = other
    d.start()
    assert stat.S_ISSOCK(os.stat(other).st_mode)
    assert not os.path.exists(in_file)
    r = subprocess.run([levee_build.leveed, "--config", d.config_path, "--redis", "not-a-seed"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "--redis" in r.stderr, r.stderr


def test_socket_mode_defaults_to_0660_and_follows_the_config(make_leveed):
    d = make_leveed()
    assert stat.S_IMODE(os.stat(d.socket_path).st_mode) == 0o660
    d2 = make_leveed(socket_mode="0600")
    assert stat.S_IMODE(os.stat(d2.socket_path).st_mode) == 0o600


def test_hello_is_answered_and_an_unknown_version_is_refused(make_leveed, levee_build):
    d = make_leveed()
    ok = subprocess.run([levee_build.leveectl, "--socket", d.socket_path, "hello"],
                        capture_output=True, text=True, timeout=10)
    assert ok.returncode == 0, ok.stderr
    assert "accepted=yes" in ok.stdout and "protocol_version=1" in ok.stdout

    bad = subprocess.run([levee_build.leveectl, "--socket", d.socket_path, "--protocol-version", "99", "hello"],
                         capture_output=True, text=True, timeout=10)
    assert bad.returncode == 1
    assert "accepted=no" in bad.stdout
    assert "protocol version 99 is not supported; leveed speaks version 1" in bad.stdout
    d.wait_for_log(r"warn hello_refused .*protocol_version=99")


def test_sigterm_exits_cleanly_and_removes_the_socket(make_leveed):
    d = make_leveed()
    assert os.path.exists(d.socket_path)
    assert d.terminate() == 0
    assert not os.path.exists(d.socket_path)
    assert re.search(r"info stopped exit_code=0", d.log())


def test_a_second_leveed_on_the_same_socket_is_refused(make_leveed, levee_build):
    d = make_leveed()
    d2 = make_leveed(socket_path=d.socket_path, start=False)
    r = subprocess.run([levee_build.leveed, "--config", d2.config_path], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1
    assert "another process is listening on" in d2.log()
    assert os.path.exists(d.socket_path)
    assert subprocess.run([levee_build.leveectl, "--socket", d.socket_path, "hello"],
                          capture_output=True, timeout=10).returncode == 0


# ---------------------------------------------------------------- the link

def test_every_worker_says_hello_and_reconnects_after_leveed_restarts(make_leveed, make_nginx):
    d = make_leveed()
    n = make_nginx(PLAIN_HTTP, workers=2, sock=d.socket_path)
    workers = set(n.worker_pids())
    assert len(workers) == 2
    wait_until(lambda: set(hellos(d)) == workers, timeout=10, message="a hello from every worker")

    # requests flow throughout the outage and the restart
    statuses: list[int] = []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            statuses.append(n.get("/")[0])
            time.sleep(0.005)

    t = threading.Thread(target=load)
    t.start()
    try:
        time.sleep(0.3)
        d.kill()                      # SIGKILL: no goodbye, the socket file stays behind
        time.sleep(1.0)               # workers are now backing off
        log_before = d.log()
        d.restart()
        wait_until(lambda: all(c >= 2 for c in hellos(d).values()) and set(hellos(d)) == workers,
                   timeout=15, message="every worker to say hello again")
        time.sleep(0.3)
    finally:
        stop.set()
        t.join()

    assert set(n.worker_pids()) == workers, "workers changed: nginx was reloaded or restarted"
    assert len(statuses) > 50
    assert set(statuses) == {200}, f"non-200 statuses while leveed restarted: {set(statuses)}"
    assert "connected to sidecar" in n.error_log()
    assert "closed the connection" in n.error_log()
    assert len(d.log()) > len(log_before)


def test_workers_wait_for_a_leveed_that_starts_after_nginx(make_leveed, make_nginx):
    d = make_leveed(start=False)
    n = make_nginx(PLAIN_HTTP, workers=2, sock=d.socket_path)
    assert n.get("/")[0] == 200
    assert "connect() to unix:" in n.error_log()
    time.sleep(0.5)
    d.start()
    wait_until(lambda: set(hellos(d)) == set(n.worker_pids()), timeout=10,
               message="every worker to connect once leveed is up")


def test_nginx_quits_gracefully_with_the_link_open(make_leveed, make_nginx):
    d = make_leveed()
    n = make_nginx(PLAIN_HTTP, workers=2, sock=d.socket_path)
    wait_until(lambda: len(hellos(d)) == 2, timeout=10, message="hellos")
    start = time.monotonic()
    n.stop()
    assert time.monotonic() - start < 5, "the idle sidecar link held up a graceful shutdown"


# ---------------------------------------------------------------- stores

def test_leveed_writes_and_reads_back_every_redis_master_and_the_database(
        redis_cluster, mongo_db, make_leveed, levee_build):
    d = make_leveed(redis_seeds=redis_cluster.seeds[:1], mongo_uri=mongo_db.uri)
    keys = redis_cluster.key_for_each_master("probe-")
    assert len(keys) == 3
    for master_port, key in keys.items():
        value = f"value-of-{key}"
        r = subprocess.run([levee_build.leveectl, "--admin-socket", d.admin_socket_path, "probe", key, value],
                           capture_output=True, text=True, timeout=30)
        out = dict(line.split("=", 1) for line in r.stdout.strip().splitlines())
        assert r.returncode == 0, r.stdout + r.stderr
        assert out["redis_node"] == f"127.0.0.1:{master_port}"
        assert out["redis_value"] == value
        assert value in out["document"]
        # read back independently: the owning master answers without a redirect
        assert redis_cluster.cli(master_port, "GET", probe_key(key)).strip() == value
        doc = mongo_db.find_one("levee", "probes", {"_id": key})
        assert doc is not None and doc["value"] == value


def test_worker_logs_a_refused_hello_and_backs_off(make_nginx, tmp_path):
    """A leveed of another protocol version refuses the workers' hello: they
    say why in nginx's error log and retry at the longest backoff. The peer
    here speaks raw frames as a future leveed would."""
    import socket as _socket
    path = str(tmp_path / "future.sock")
    srv = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    srv.settimeout(10)
    reason = b"protocol version 1 is not supported; leveed speaks version 2"
    reply = bytes([0x10, 0x02, 0x1a, 0x06]) + b"future" + bytes([0x22, len(reason)]) + reason
    frame = bytes([0x5a, len(reply)]) + reply
    n = make_nginx(PLAIN_HTTP, workers=1, sock=path)
    try:
        conn, _ = srv.accept()
        header = conn.recv(4)
        conn.recv(int.from_bytes(header, "big"))          # the worker's hello
        conn.sendall(len(frame).to_bytes(4, "big") + frame)
        wait_until(lambda: "refused hello" in n.error_log(), timeout=5, message="the refusal in nginx's log")
        assert reason.decode() in n.error_log()
        # the worker waits the longest backoff (2.5-5 s) before trying again
        srv.settimeout(1.5)
        with pytest.raises(_socket.timeout):
            srv.accept()
        assert n.get("/")[0] == 200
        conn.close()
    finally:
        srv.close()


def test_a_sidecar_that_never_answers_hello_is_left_and_retried(make_nginx, tmp_path):
    """A peer that accepts and stays silent (a wedged leveed) does not keep a
    worker's link half-open for ever: after 5 s it reconnects."""
    import socket as _socket
    path = str(tmp_path / "silent.sock")
    srv = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    srv.settimeout(10)
    n = make_nginx(PLAIN_HTTP, workers=1, sock=path)
    try:
        first, _ = srv.accept()
        second, _ = srv.accept()          # the worker gave up on the first and came back
        assert "did not answer hello within 5000 ms" in n.error_log()
        assert n.get("/")[0] == 200
        first.close()
        second.close()
    finally:
        srv.close()
