"""leveed starts like a system daemon: with no argument it reads the default
settings file (LEVEE_CONFIG stands in for /etc/levee/leveed.conf) or runs
standalone on the defaults and says what that means, to its log and, through
the hello, to nginx; --check-config prints the effective settings; SIGHUP
re-reads the settings without dropping a connection."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess

from harness.wait import wait_until

# A valid Hello (field 10, protocol_version 1), framed: holds a connection open.
HELLO = bytes([0x52, 0x02, 0x08, 0x01])
HELLO_FRAME = len(HELLO).to_bytes(4, "big") + HELLO
# HelloReply field 5 (standalone) = true, as protobuf encodes it.
STANDALONE_TRUE = b"\x28\x01"

LIMITS = """
    levee_sidecar unix:$sock;
    levee_limit_zone api key=$remote_addr rate=100r/s burst=20 scope=global size=1m;
    levee_limit_zone login key=$remote_addr rate=5r/s burst=5 scope=global size=1m;
    levee_limit_zone local key=$remote_addr rate=100r/s size=1m;
    server {
        listen 127.0.0.1:$port;
        location / { levee_limit api nodelay; levee_limit local nodelay; return 200 "ok\\n"; }
        location /login { levee_limit login nodelay; return 200 "ok\\n"; }
    }
"""

WARNING = r'levee_limit_zone "{zone}" is scope=global but leveed is standalone: N nginx hosts each admit the full rate'

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def hello(levee_build, leveed) -> str:
    r = subprocess.run([levee_build.leveectl, "--socket", leveed.socket_path, "hello"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout


def held_hello(sock: socket.socket) -> bytes:
    """Says hello on an open connection; returns the reply frame's body."""
    sock.sendall(HELLO_FRAME)
    head = b""
    while len(head) < 4:
        head += sock.recv(4 - len(head))
    n = int.from_bytes(head, "big")
    body = b""
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        assert chunk, "leveed closed the connection"
        body += chunk
    return body


def nginx_linked(ngx, workers: int = 2) -> None:
    wait_until(lambda: ngx.error_log().count("levee: connected to sidecar") >= workers, timeout=15,
               message="every worker linked to leveed")


# ------------------------------------------------------------------ start-up

def test_no_argument_reads_the_default_settings_file(make_leveed, levee_build):
    d = make_leveed(config_via="env", log_level="info", settings={"max_connections": 77})
    with open(f"/proc/{d.pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[1:] == [b""], "leveed was started with no argument"
    assert "accepted=yes" in hello(levee_build, d)
    log = d.log()
    assert re.search(rf"info started socket={re.escape(d.socket_path)} ", log), log
    assert "no_config_file" not in log


def test_without_a_settings_file_leveed_runs_standalone_and_says_so(make_leveed, levee_build, tmp_path):
    # the socket's directory does not exist yet: leveed makes it, as for /run/levee
    sock = str(tmp_path / "run" / "leveed.sock")
    d = make_leveed(config_via="none", socket_path=sock)
    assert os.path.isdir(tmp_path / "run")
    log = d.log()
    assert re.search(r"info no_config_file path=\S+absent\.conf using=\"built-in defaults\"", log), log
    assert re.search(r"warn standalone_mode reason=\"no redis configured\" meaning=\"[^\"]*"
                     r"each nginx host counts scope=global limits alone\"", log), log
    assert "standalone=yes" in hello(levee_build, d)


def test_a_socket_directory_that_cannot_be_made_is_explained(levee_build, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = {k: v for k, v in os.environ.items() if k != "LEVEE_CONFIG"}
    env["LEVEE_CONFIG"] = str(tmp_path / "absent.conf")
    r = subprocess.run([levee_build.leveed, "--socket", str(blocker / "sub" / "leveed.sock")],
                       capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 1
    assert "cannot create the socket's directory" in r.stderr and "--socket PATH" in r.stderr, r.stderr


def test_a_leveed_with_redis_is_not_standalone(make_leveed, redis_cluster, levee_build):
    d = make_leveed(redis_seeds=redis_cluster.seeds)
    assert "standalone=no" in hello(levee_build, d)
    assert "standalone_mode" not in d.log()


def test_seeds_given_by_name_are_resolved_and_one_that_fails_is_named(make_leveed, redis_cluster, levee_build):
    # leveed resolves names itself (evdns: /etc/hosts, then resolv.conf) on
    # its loop; hiredis gets the address. A name that cannot resolve is a
    # failed connect, logged with the name, and the other seed still serves.
    port = redis_cluster.ports[0]
    d = make_leveed(redis_seeds=f"nowhere.invalid:{port},localhost:{port}", log_level="info")
    d.wait_for_log(r"redis_cluster_ready seeds=nowhere\.invalid:\d+,localhost:\d+", timeout=20)
    d.wait_for_log(r"redis_node_down node=nowhere\.invalid:\d+ reason=\"resolve nowhere\.invalid: ", timeout=20)
    assert "standalone=no" in hello(levee_build, d)


# ------------------------------------------------------------------ nginx side

def test_standalone_leveed_makes_nginx_warn_once_per_global_zone(make_leveed, make_nginx):
    d = make_leveed()
    ngx = make_nginx(LIMITS, workers=2, sock=d.socket_path)
    nginx_linked(ngx)
    for zone in ("api", "login"):
        wait_until(lambda: len(re.findall(r"\[warn\] .*" + re.escape(WARNING.format(zone=zone)),
                                          ngx.error_log())) == 2,
                   timeout=10, message=f"one warning per worker for {zone}")
    assert 'levee_limit_zone "local"' not in ngx.error_log()
    assert "connected to sidecar unix:" in ngx.error_log() and ", standalone)" in ngx.error_log()

    # a reconnect to the same leveed does not repeat it: once per worker
    d.restart()
    wait_until(lambda: ngx.error_log().count("levee: connected to sidecar") >= 4, timeout=20,
               message="workers linked again")
    assert ngx.error_log().count("is scope=global but leveed is standalone") == 4
    assert ngx.get("/")[0] == 200


def test_redis_backed_leveed_does_not_make_nginx_warn(make_leveed, make_nginx, redis_cluster):
    d = make_leveed(redis_seeds=redis_cluster.seeds)
    ngx = make_nginx(LIMITS, workers=2, sock=d.socket_path)
    nginx_linked(ngx)
    # the warning would be written in the same event as the "connected" line
    assert "standalone" not in ngx.error_log()


# ------------------------------------------------------------------ --check-config

def test_check_config_prints_every_setting_with_secrets_masked(levee_build, tmp_path):
    conf = tmp_path / "leveed.conf"
    conf.write_text("socket /tmp/from-file.sock\n"
                    "redis 127.0.0.1:7000\n"
                    "redis_password hunter2-redis\n"
                    "mongo mongodb://levee:hunter2-mongo@127.0.0.1:27017/?appname=leveed\n"
                    "log_level info\n")
    r = subprocess.run([levee_build.leveed, "--check-config", str(conf), "--socket", "/tmp/from-flag.sock"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "hunter2" not in out + r.stderr
    assert re.search(r"^redis_password +\*{8}$", out, re.M), out
    assert re.search(r"^mongo +mongodb://levee:\S*@127\.0\.0\.1:27017/", out, re.M), out
    assert re.search(r"^socket +/tmp/from-flag\.sock$", out, re.M), "the flag wins over the file"
    assert re.search(r"^log_level +info +# default$", out, re.M), "set to its default: shown as default"
    assert re.search(r"^redis +127\.0\.0\.1:7000$", out, re.M)
    assert re.search(r"^drain_timeout_ms +10000 +# default$", out, re.M)
    # every setting, each once, and each one the reference documents
    printed = [l.split()[0] for l in out.splitlines() if not l.endswith(": ok")]
    with open(os.path.join(REPO, "docs", "leveed.md")) as f:
        documented = re.findall(r"^\| `([a-z_]+)` \|", f.read(), re.M)
    assert sorted(printed) == sorted(set(printed)) == sorted(documented), (printed, documented)


def test_check_config_refuses_what_start_would_refuse(levee_build, tmp_path):
    conf = tmp_path / "leveed.conf"
    conf.write_text("socket /tmp/x.sock\nredis ::1:7000\nmongo mongodb://127.0.0.1:notaport/\nlog_level loud\n"
                    "socket_group no-such-group-levee\n")
    r = subprocess.run([levee_build.leveed, "--check-config", str(conf)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1
    for line in (2, 3, 4):
        assert f"{conf}:{line}: " in r.stderr, r.stderr
    assert 'socket_group "no-such-group-levee": no such group' in r.stderr, r.stderr
    assert "socket " not in r.stdout, "no settings printed for a bad file"


# ------------------------------------------------------------------ SIGHUP

def test_sighup_applies_log_level_and_names_restart_settings_keeping_connections(
        make_leveed, make_nginx, levee_build):
    d = make_leveed(log_level="info")
    ngx = make_nginx(LIMITS, workers=2, sock=d.socket_path)
    nginx_linked(ngx)
    held = d.connect()
    assert b"leveed/" in held_hello(held), "a hello reply"
    hello(levee_build, d)
    assert "debug connection_accepted" not in d.log()
    hellos = d.log().count("hello_accepted")

    reloaded = d.reload({"log_level": "debug", "presence_buckets": 16, "mongo_flush_ms": 250})
    assert re.search(r"warn config_restart_needed setting=presence_buckets ", reloaded), reloaded
    assert re.search(r"info config_reloaded changed=mongo_flush_ms,log_level restart_needed=presence_buckets$",
                     reloaded, re.M), reloaded
    assert "log_reopened" in reloaded, "SIGHUP still reopens the log"

    hello(levee_build, d)
    d.wait_for_log(r"debug connection_accepted")
    # the held connection and nginx's stayed up: nothing closed, nobody said hello again
    assert STANDALONE_TRUE in held_hello(held)
    held.close()
    log = d.log()
    assert log.count("hello_accepted") == hellos + 2
    assert not re.search(r"connection_closed .*ngx_http_levee_module", log)
    assert "reconnecting" not in ngx.error_log()
    assert ngx.get("/")[0] == 200

    # what needs a restart stays pending: named again at the next reload
    again = d.reload()
    assert re.search(r"config_reloaded changed=- restart_needed=presence_buckets$", again, re.M), again


def test_sighup_with_a_bad_file_keeps_the_running_settings(make_leveed, levee_build):
    d = make_leveed(log_level="info")
    reloaded = d.reload({"log_level": "debug"}, extra_config="no_such_setting 1\nmax_connections 0\n")
    assert re.search(r"error config_error file=\S+ line=\d+ error=\"unknown setting \\\"no_such_setting\\\"\"",
                     reloaded), reloaded
    assert re.search(r"error config_error .*max_connections must be", reloaded), reloaded
    assert re.search(r"error config_reload_failed errors=2 ", reloaded), reloaded
    assert "config_reloaded" not in reloaded

    hello(levee_build, d)
    d.wait_for_log(r"hello_accepted .*client=leveectl")
    assert "debug connection_accepted" not in d.log(), "log_level stayed info"
    assert d.pid is not None

    fixed = d.reload(extra_config="")
    assert "config_reloaded changed=log_level " in fixed, fixed
    hello(levee_build, d)
    d.wait_for_log(r"debug connection_accepted")


def test_sighup_changes_redis_wait_live(make_leveed, redis_cluster, levee_build):
    d = make_leveed(redis_seeds=redis_cluster.seeds, log_level="info")
    beat = [levee_build.leveectl, "--socket", d.socket_path, "beat"]
    assert subprocess.run(beat + ["wait-1"], capture_output=True, timeout=30).returncode == 0
    reloaded = d.reload({"redis_wait_replicas": 0, "redis_wait_timeout_ms": 50})
    assert re.search(r"config_reloaded changed=redis_wait_replicas,redis_wait_timeout_ms restart_needed=-$",
                     reloaded, re.M), reloaded
    for user in ("wait-2", "wait-3"):
        assert subprocess.run(beat + [user], capture_output=True, timeout=30).returncode == 0
    reloaded = d.reload({"redis_wait_replicas": 1})
    assert "changed=redis_wait_replicas " in reloaded
    assert subprocess.run(beat + ["wait-4"], capture_output=True, timeout=30).returncode == 0
    assert d.pid is not None
    # SIGTERM still drains and exits cleanly
    assert d.terminate() == 0


def test_sighup_after_the_default_file_was_removed_keeps_the_running_settings(make_leveed, levee_build):
    d = make_leveed(config_via="env", log_level="debug")
    os.rename(d.config_path, d.config_path + ".moved")
    since = len(d.log())
    d.send_signal(signal.SIGHUP)
    d.wait_for_log(r"error config_reload_failed errors=1 ")
    assert re.search(r"error config_error .*cannot read " + re.escape(d.config_path), d.log()[since:])
    hello(levee_build, d)
    wait_until(lambda: "debug connection_accepted" in d.log()[since:], timeout=10,
               message="still logging at debug")


def test_sighup_lowers_max_connections_for_new_connections_only(make_leveed, levee_build):
    d = make_leveed(log_level="info")
    held = d.connect()
    held_hello(held)
    reloaded = d.reload({"max_connections": 1})
    assert "config_reloaded changed=max_connections " in reloaded, reloaded
    r = subprocess.run([levee_build.leveectl, "--socket", d.socket_path, "hello"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0, "a second connection is refused"
    d.wait_for_log(r"warn connection_refused reason=max_connections limit=1")
    assert b"leveed/" in held_hello(held), "the open one stays"
    held.close()
