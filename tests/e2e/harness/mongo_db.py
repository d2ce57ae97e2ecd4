"""A MongoDB-wire-protocol server on 127.0.0.1 with its data in a temp dir.

Which server is pluggable:

* env ``LEVEE_MONGO_SERVER_CMD``: a command line, formatted with ``{port}``
  and ``{dir}`` (the data directory), e.g.
  ``ferretdb --handler=sqlite --sqlite-url=file:{dir}/ --listen-addr=127.0.0.1:{port} --telemetry=disable
  --state-dir={dir} --debug-addr=-`` (tests/e2e/CMakeLists.txt runs the
  e2e.ferretdb.* entries so)
* otherwise :func:`default_server_command` (edit it when the project picks a
  server).

If neither yields a command, ``start()`` raises :class:`ComponentUnavailable`
(a pytest skip) with the reason.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import time

from . import proc as _proc
from .base import Component
from .mongo_wire import MongoWireClient
from .ports import free_port
from .proc import ComponentUnavailable, HarnessError

__all__ = ["MongoDatabase", "default_server_command", "ENV_CMD"]

ENV_CMD = "LEVEE_MONGO_SERVER_CMD"


def default_server_command(port: int, dir: str) -> list[str] | None:
    """The command line of the default server, or None if there is none.

    SecantusDB (MongoDB wire protocol on WiredTiger, from PyPI), as
    scripts/install-deps.sh installs it; else the ``ferretdb`` v1 binary that
    scripts/install-ferretdb.sh builds, or one on PATH.
    """
    tools = os.environ.get("LEVEE_TOOLS_DIR", "/opt/levee-tools")
    secantus = _existing(os.path.join(tools, "secantus-venv", "bin", "secantusd-py"))
    if secantus is not None:
        return [secantus, "--host", "127.0.0.1", "--port", str(port), "--storage-path", dir,
                "--standalone", "--cache-size", "128M", "--log-level", "WARNING"]
    exe = _existing(os.path.join(tools, "ferretdb", "bin", "ferretdb")) or shutil.which("ferretdb")
    if exe is None:
        return None
    return [exe, "--handler=sqlite", f"--sqlite-url=file:{dir}/",
            f"--listen-addr=127.0.0.1:{port}", "--telemetry=disable",
            f"--state-dir={dir}", "--debug-addr=-", "--log-level=info"]


def _existing(path: str) -> str | None:
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


class MongoDatabase(Component):
    kind = "mongo"

    def __init__(self, command: str | list[str] | None = None, start_timeout: float = 30.0,
                 database: str = "levee") -> None:
        super().__init__()
        self._command = command
        self.start_timeout = start_timeout
        self.database = database
        self.port: int | None = None
        self.dir: str | None = None
        self.data_dir: str | None = None
        self.proc = None
        self.argv: list[str] | None = None
        self.paused = False

    # ------------------------------------------------------------ lifecycle
    def _resolve_command(self) -> list[str]:
        cmd = self._command if self._command is not None else os.environ.get(ENV_CMD) or None
        if cmd is not None:
            if isinstance(cmd, str):
                return shlex.split(cmd.format(port=self.port, dir=self.data_dir))
            return [str(a).format(port=self.port, dir=self.data_dir) for a in cmd]
        argv = default_server_command(self.port, self.data_dir)
        if argv is None:
            raise ComponentUnavailable(
                f"no MongoDB-wire server available: set {ENV_CMD} (format string with "
                "{port} and {dir}) or install one that harness/mongo_db.py:"
                "default_server_command() knows")
        return argv

    def _start(self) -> None:
        if self.dir is None:
            self.dir = _proc.component_dir("mongo")
            self.data_dir = os.path.join(self.dir, "data")
            os.makedirs(self.data_dir)
            self.port = free_port()
        if self.argv is None:
            self.argv = self._resolve_command()
        if shutil.which(self.argv[0]) is None:
            raise ComponentUnavailable(f"MongoDB-wire server {self.argv[0]!r} not found")
        self._launch()

    def _launch(self) -> None:
        self.paused = False
        self.proc = _proc.spawn(self.argv, log_path=self.log_path, cwd=self.dir)
        try:
            _proc.wait_port("127.0.0.1", self.port, self.start_timeout, self.proc, what=self.argv[0])
            self._wait_hello()
        except HarnessError as e:
            raise HarnessError(f"{e}\n{_proc.tail(self.log_path, 30)}") from None

    def _wait_hello(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"{self.argv[0]} exited with code {self.proc.returncode}")
            try:
                with MongoWireClient("127.0.0.1", self.port, timeout=2) as c:
                    c.hello()
                return
            except Exception as e:  # noqa: BLE001
                last = e
                time.sleep(0.1)
        raise HarnessError(f"no hello reply from :{self.port} within {self.start_timeout}s ({last})")

    def _stop(self) -> None:
        if self.proc is not None:
            _proc.terminate_group(self.proc, signal.SIGTERM, timeout=10)
        self.paused = False

    def restart(self) -> None:
        """Stop and start again on the same port with the same data dir."""
        self._stop()
        _proc.register_component(self)
        self._launch()
        self.started = True

    def pause(self) -> None:
        os.killpg(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        _proc.kill_group(self.proc)

    # ------------------------------------------------------------ access
    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "server.log")

    def log_paths(self) -> list[str]:
        return [self.log_path] if self.dir else []

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None and self.proc.poll() is None else []

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def client(self, timeout: float = 5.0) -> MongoWireClient:
        """A new wire client (use as a context manager)."""
        return MongoWireClient("127.0.0.1", self.port, timeout=timeout)

    def hello(self) -> dict:
        with self.client() as c:
            return c.hello()

    def command(self, db: str, doc: dict, check: bool = True) -> dict:
        with self.client() as c:
            return c.command(db, doc, check=check)

    def find_one(self, db: str, coll: str, filter: dict | None = None) -> dict | None:
        with self.client() as c:
            return c.find_one(db, coll, filter)

    def find(self, db: str, coll: str, filter: dict | None = None, **kw) -> list[dict]:
        with self.client() as c:
            return c.find(db, coll, filter, **kw)

    def describe(self) -> str:
        return f"mongo :{self.port}"
