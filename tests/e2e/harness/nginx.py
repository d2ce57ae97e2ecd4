"""A private nginx (master + workers) for one test.

The ``http {}`` body is a :class:`string.Template`: ``$port`` (and any name
passed in ``ports=``) become free ports, ``$dir`` the nginx directory, and
any keyword argument its value. Unknown ``$names`` are left alone, so nginx
variables (``$host``, ``$arg_uid``, ``$http_upgrade``...) pass through —
just don't pass a keyword whose name is an nginx variable you use.

Running as root (CI): nginx would run its workers as ``nobody``, which
cannot reach files/sockets in the 0700 temp dirs other components create.
We therefore emit ``user root root;`` when euid == 0 (override with
``user="nobody nogroup"`` for a test about socket permissions; the harness
makes its directories 0755 when root so traversal works either way).
"""

from __future__ import annotations

import http.client
import os
import pwd
import grp
import shutil
import signal
import string
import subprocess
import time

from . import proc as _proc
from .base import Component
from .ports import free_port
from .proc import ComponentUnavailable, HarnessError

__all__ = ["Nginx", "NGINX_BIN"]

NGINX_BIN = os.environ.get("LEVEE_NGINX", "/usr/sbin/nginx")


def _nginx_bin() -> str:
    if os.path.isfile(NGINX_BIN):
        return NGINX_BIN
    exe = shutil.which("nginx")
    if exe is None:
        raise ComponentUnavailable("nginx not installed")
    return exe


def _default_user() -> str | None:
    if os.geteuid() != 0:
        return None  # nginx cannot switch users anyway
    return "root root"


class Nginx(Component):
    kind = "nginx"

    def __init__(self, conf_body: str, module_path: str | None = None, workers: int = 2,
                 ports: tuple[str, ...] | list[str] = ("port",), user: str | None = "auto",
                 main_conf: str = "", events_conf: str = "", error_log_level: str = "info",
                 start_timeout: float = 10.0, **subs) -> None:
        super().__init__()
        self.conf_body = conf_body
        self.module_path = os.path.abspath(module_path) if module_path else None
        self.workers = workers
        self.port_names = tuple(ports)
        self.user = _default_user() if user == "auto" else user
        self.main_conf = main_conf
        self.events_conf = events_conf
        self.error_log_level = error_log_level
        self.start_timeout = start_timeout
        self.subs = dict(subs)
        self.ports: dict[str, int] = {}
        self.dir: str | None = None
        self.conf_path: str | None = None
        self.proc: subprocess.Popen | None = None
        self._prepare()

    # ---------------------------------------------------------- config
    def _prepare(self) -> None:
        self.dir = _proc.component_dir("nginx")
        for name in self.port_names:
            self.ports[name] = free_port()
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.dir, "tmp", sub))
        if os.geteuid() == 0 and self.user and self.user.split()[0] != "root":
            # workers as an unprivileged user must write temp files
            _chown_tree(os.path.join(self.dir, "tmp"), self.user)
        self.conf_path = os.path.join(self.dir, "nginx.conf")
        self.write_config(self.conf_body)

    def render(self, conf_body: str) -> str:
        values = {"dir": self.dir, **{k: str(v) for k, v in self.ports.items()},
                  **{k: str(v) for k, v in self.subs.items()}}
        body = string.Template(conf_body).safe_substitute(values)
        d = self.dir
        lines = []
        if self.module_path:
            lines.append(f"load_module {self.module_path};")
        if self.user:
            lines.append(f"user {self.user};")
        lines += [
            "daemon off;",
            "master_process on;",
            f"worker_processes {self.workers};",
            f"error_log {d}/error.log {self.error_log_level};",
            f"pid {d}/nginx.pid;",
            self.main_conf,
            "events {",
            "    worker_connections 1024;",
            self.events_conf,
            "}",
            "http {",
            f"    access_log {d}/access.log;",
            f"    client_body_temp_path {d}/tmp/client_body;",
            f"    proxy_temp_path {d}/tmp/proxy;",
            f"    fastcgi_temp_path {d}/tmp/fastcgi;",
            f"    uwsgi_temp_path {d}/tmp/uwsgi;",
            f"    scgi_temp_path {d}/tmp/scgi;",
            body,
            "}",
        ]
        return "\n".join(lines) + "\n"

    def write_config(self, conf_body: str | None = None, **subs) -> str:
        """(Re)write nginx.conf; call :meth:`reload` to apply a new body."""
        if conf_body is not None:
            self.conf_body = conf_body
        self.subs.update(subs)
        text = self.render(self.conf_body)
        with open(self.conf_path, "w") as f:
            f.write(text)
        return text

    @property
    def config_text(self) -> str:
        return _proc.read_text(self.conf_path)

    def _argv(self, *extra: str) -> list[str]:
        return [_nginx_bin(), "-p", self.dir + "/", "-c", self.conf_path,
                "-e", os.path.join(self.dir, "error.log"), *extra]

    def test_config(self) -> tuple[int, str]:
        """``nginx -t``: (returncode, stderr)."""
        r = subprocess.run(self._argv("-t"), capture_output=True, text=True, timeout=30)
        return r.returncode, r.stderr

    # ---------------------------------------------------------- lifecycle
    @property
    def port(self) -> int:
        return self.ports[self.port_names[0]]

    def _start(self) -> None:
        self.proc = _proc.spawn(self._argv(), log_path=os.path.join(self.dir, "stdout.log"),
                                cwd=self.dir)
        try:
            for p in self.ports.values():
                _proc.wait_port("127.0.0.1", p, self.start_timeout, self.proc, what="nginx")
            deadline = time.monotonic() + self.start_timeout
            while len(self.worker_pids()) < self.workers:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise HarnessError(f"nginx workers did not start ({self.worker_pids()})")
                time.sleep(0.01)
        except HarnessError as e:
            raise HarnessError(f"{e}\n--- error.log:\n{_proc.tail(self.error_log_path, 30)}"
                               f"\n--- stdout:\n{_proc.tail(os.path.join(self.dir, 'stdout.log'), 10)}") from None

    def reload(self, conf_body: str | None = None, wait: bool = True, timeout: float = 10.0,
               **subs) -> list[int]:
        """SIGHUP (optionally after writing a new body). With ``wait``, returns
        once ``workers`` new worker processes run; raises if nginx rejected
        the new configuration."""
        if conf_body is not None or subs:
            self.write_config(conf_body, **subs)
        old = set(self.worker_pids())
        log_size = _size(self.error_log_path)
        os.kill(self.proc.pid, signal.SIGHUP)
        if not wait:
            return []
        deadline = time.monotonic() + timeout
        while True:
            new = [p for p in self.worker_pids() if p not in old]
            if len(new) >= self.workers and all(_retired(p) for p in old):
                # old workers close their listening sockets right after
                # renaming themselves "shutting down"
                time.sleep(0.02)
                return new
            log = _read_from(self.error_log_path, log_size)
            if "[emerg]" in log or "[alert]" in log:
                raise HarnessError(f"nginx reload failed:\n{log[-3000:]}")
            if self.proc.poll() is not None:
                raise HarnessError("nginx master exited during reload")
            if time.monotonic() > deadline:
                raise HarnessError(f"reload: no new workers after {timeout}s\n{log[-3000:]}")
            time.sleep(0.02)

    def _stop(self) -> None:
        if self.proc is None:
            return
        # SIGQUIT = graceful shutdown; the group sweep kills lingering workers
        _proc.terminate_group(self.proc, signal.SIGQUIT, timeout=5.0, group=False)

    def kill(self) -> None:
        _proc.kill_group(self.proc)

    # ---------------------------------------------------------- inspection
    @property
    def master_pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def worker_pids(self) -> list[int]:
        """Live children of the master (workers, cache manager...)."""
        mp = self.master_pid
        if mp is None:
            return []
        return children_of(mp)

    def pids(self) -> list[int]:
        mp = self.master_pid
        return ([mp] + self.worker_pids()) if mp else []

    @property
    def error_log_path(self) -> str:
        return os.path.join(self.dir, "error.log")

    def error_log(self) -> str:
        return _proc.read_text(self.error_log_path)

    def access_log(self) -> str:
        return _proc.read_text(os.path.join(self.dir, "access.log"))

    def log_paths(self) -> list[str]:
        return [self.error_log_path, os.path.join(self.dir, "stdout.log")]

    def url(self, path: str = "/", port_name: str | None = None) -> str:
        port = self.ports[port_name] if port_name else self.port
        return f"http://127.0.0.1:{port}{path}"

    def request(self, method: str, path: str = "/", headers: dict | None = None,
                body: bytes | str | None = None, timeout: float = 10.0,
                port_name: str | None = None):
        """(status, headers, body bytes). ``headers`` is an
        ``http.client.HTTPMessage`` (case-insensitive ``[]``/``get``,
        ``get_all`` for repeated headers)."""
        port = self.ports[port_name] if port_name else self.port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.headers, data
        finally:
            conn.close()

    def get(self, path: str = "/", headers: dict | None = None, timeout: float = 10.0,
            port_name: str | None = None):
        return self.request("GET", path, headers=headers, timeout=timeout, port_name=port_name)

    def describe(self) -> str:
        return f"nginx :{','.join(map(str, self.ports.values()))} pid={self.master_pid}"


# -------------------------------------------------------------- helpers

def children_of(pid: int) -> list[int]:
    """Live direct children of ``pid``."""
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(x) for x in f.read().split()]
        return sorted(k for k in kids if _proc.pid_alive(k))
    except OSError:
        # no children file (older kernels): scan /proc for the ppid
        return sorted(child for child, ppid, _pgrp in _proc.live_processes() if ppid == pid)


def _retired(pid: int) -> bool:
    """An old worker has exited or started its graceful shutdown."""
    if not _proc.pid_alive(pid):
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"shutting down" in f.read()
    except OSError:
        return True


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _read_from(path: str, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _chown_tree(path: str, user_spec: str) -> None:
    parts = user_spec.split()
    try:
        uid = pwd.getpwnam(parts[0]).pw_uid
        gid = grp.getgrnam(parts[1]).gr_gid if len(parts) > 1 else pwd.getpwnam(parts[0]).pw_gid
    except KeyError:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for n in dirs + files:
            os.chown(os.path.join(root, n), uid, gid)
