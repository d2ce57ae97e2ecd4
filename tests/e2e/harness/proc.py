"""Process bookkeeping shared by every harness component.

Every child the harness starts goes through :func:`spawn`, which

* puts it in its own session / process group (``start_new_session=True``),
  so a whole tree (nginx master + workers) can be killed with one ``killpg``;
* asks the kernel to SIGKILL it if the test process dies without cleaning up
  (``PR_SET_PDEATHSIG``, Linux only, best effort);
* records it in a global registry that an ``atexit`` hook and SIGTERM/SIGINT
  handlers kill unconditionally.

It also owns the run's scratch directory (``levee-e2e-*`` under the system
temp dir), removed at exit unless ``LEVEE_KEEP_TMP=1``, and a registry of
live components whose log tails are printed when a test fails.
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Iterable

__all__ = [
    "ComponentUnavailable",
    "HarnessError",
    "spawn",
    "kill_group",
    "terminate_group",
    "pid_alive",
    "kill_all",
    "run_dir",
    "component_dir",
    "cleanup_run_dir",
    "register_component",
    "unregister_component",
    "live_components",
    "tail",
]


class HarnessError(RuntimeError):
    """A component failed to start or misbehaved."""


try:  # pytest is always there in the e2e runs, but keep the harness importable
    import pytest as _pytest

    _SkipBase = _pytest.skip.Exception
except Exception:  # pragma: no cover
    _SkipBase = Exception


class ComponentUnavailable(_SkipBase):
    """A component cannot run on this machine (e.g. no MongoDB-wire server).

    It subclasses pytest's skip exception: raised from a fixture or test it
    makes the test *skip* with ``reason`` instead of erroring.
    """

    def __init__(self, reason: str):
        try:
            super().__init__(msg=reason, allow_module_level=True)
        except TypeError:  # pragma: no cover - non-pytest base
            super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


# --------------------------------------------------------------------------
# registry of children

_lock = threading.RLock()
_children: dict[int, subprocess.Popen] = {}  # pid -> Popen (pid == pgid)
_PR_SET_PDEATHSIG = 1

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
except Exception:  # pragma: no cover
    _prctl = None


def _preexec() -> None:  # runs in the child between fork and exec
    if _prctl is not None:
        try:
            _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except Exception:
            pass


def spawn(argv: list[str], *, log_path: str, cwd: str | None = None,
          env: dict | None = None) -> subprocess.Popen:
    """Start ``argv`` in its own process group, stdout+stderr to ``log_path``."""
    _install_handlers()
    logf = open(log_path, "ab", buffering=0)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_preexec if threading.current_thread() is threading.main_thread() else None,
            close_fds=True,
        )
    except FileNotFoundError as e:
        raise HarnessError(f"cannot execute {argv[0]!r}: {e}") from e
    finally:
        logf.close()
    with _lock:
        _children[proc.pid] = proc
    return proc


def pid_alive(pid: int | None) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False
    state = data[data.rfind(b")") + 2:data.rfind(b")") + 3]
    return state not in (b"Z", b"X", b"x")


def live_processes():
    """(pid, ppid, pgrp) of every process that is not a zombie, from /proc."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2:].split()
        # fields[0]=state [1]=ppid [2]=pgrp
        if len(fields) > 2 and fields[0] not in (b"Z", b"X"):
            yield int(name), int(fields[1]), int(fields[2])


def _group_members(pgid: int) -> list[int]:
    return [pid for pid, _ppid, pgrp in live_processes() if pgrp == pgid]


def _reap(proc: subprocess.Popen, timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def kill_group(proc: subprocess.Popen | None, sig: int = signal.SIGKILL,
               timeout: float = 5.0) -> None:
    """Send ``sig`` to the process group of ``proc`` and (for SIGKILL) reap it.

    Idempotent: a process that is already gone is fine.
    """
    if proc is None:
        return
    pgid = proc.pid
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:  # pragma: no cover
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
    if sig == signal.SIGKILL:
        _reap(proc, timeout)
        # grandchildren that outlived the leader (same pgid) die too
        deadline = time.monotonic() + timeout
        while _group_members(pgid) and time.monotonic() < deadline:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        with _lock:
            _children.pop(proc.pid, None)


def terminate_group(proc: subprocess.Popen | None, sig: int = signal.SIGTERM,
                    timeout: float = 10.0, group: bool = True) -> int | None:
    """Graceful stop: ``sig`` (plus SIGCONT in case it is frozen), wait up to
    ``timeout``, then SIGKILL the group. Returns the exit code (or None)."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            if group:
                os.killpg(proc.pid, sig)
            else:
                os.kill(proc.pid, sig)
            os.killpg(proc.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        _reap(proc, timeout)
    # always sweep the group: children may outlive the leader
    kill_group(proc, signal.SIGKILL)
    return proc.returncode


def kill_all() -> None:
    """SIGKILL every process group the harness started (idempotent)."""
    with _lock:
        procs = list(_children.values())
    for p in procs:
        try:
            kill_group(p, signal.SIGKILL, timeout=2.0)
        except Exception:
            pass


# --------------------------------------------------------------------------
# scratch directory

_run_dir: str | None = None
_counters: dict[str, int] = {}


def keep_tmp() -> bool:
    return os.environ.get("LEVEE_KEEP_TMP", "") not in ("", "0", "no", "false")


def run_dir() -> str:
    """The run's scratch directory, created on first use."""
    global _run_dir
    with _lock:
        if _run_dir is None or not os.path.isdir(_run_dir):
            base = None
            # Unix socket paths are limited to 107 bytes: prefer a short base.
            tmp = tempfile.gettempdir()
            if len(tmp) > 40 and os.path.isdir("/tmp"):
                base = "/tmp"
            _run_dir = tempfile.mkdtemp(prefix="levee-e2e-", dir=base)
            if os.geteuid() == 0:
                # nginx workers may run as another user: let them traverse.
                os.chmod(_run_dir, 0o755)
            _install_handlers()
        return _run_dir


def component_dir(kind: str) -> str:
    """A fresh directory ``<run_dir>/<kind>-<n>``."""
    with _lock:
        n = _counters.get(kind, 0) + 1
        _counters[kind] = n
        d = os.path.join(run_dir(), f"{kind}-{n}")
        os.makedirs(d)
        if os.geteuid() == 0:
            os.chmod(d, 0o755)
        return d


def cleanup_run_dir(force: bool = False) -> None:
    global _run_dir
    with _lock:
        d = _run_dir
        if d is None:
            return
        if keep_tmp() and not force:
            sys.stderr.write(f"\n[levee-e2e] LEVEE_KEEP_TMP=1: kept {d}\n")
            _run_dir = None
            return
        shutil.rmtree(d, ignore_errors=True)
        _run_dir = None


# --------------------------------------------------------------------------
# live components (for log tails on failure)

_components: list = []


def register_component(c) -> None:
    with _lock:
        if c not in _components:
            _components.append(c)


def unregister_component(c) -> None:
    with _lock:
        if c in _components:
            _components.remove(c)


def live_components() -> list:
    with _lock:
        return list(_components)


def tail(path: str, lines: int = 40, max_bytes: int = 64 * 1024) -> str:
    """Last ``lines`` lines of a file ('' if missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def read_text(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------
# exit paths

_handlers_installed = False
_prev_handlers: dict[int, object] = {}


def _final_cleanup() -> None:
    kill_all()
    cleanup_run_dir()


def _on_signal(signum, frame):
    kill_all()
    prev = _prev_handlers.get(signum)
    if signum == signal.SIGINT and callable(prev):
        # let pytest turn it into KeyboardInterrupt and run its teardown
        prev(signum, frame)
        return
    cleanup_run_dir()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    global _handlers_installed
    with _lock:
        if _handlers_installed:
            return
        _handlers_installed = True
        atexit.register(_final_cleanup)
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGINT):
                try:
                    _prev_handlers[s] = signal.getsignal(s)
                    signal.signal(s, _on_signal)
                except (ValueError, OSError):  # pragma: no cover
                    pass


def wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None,
              what: str = "server") -> None:
    """Wait until ``host:port`` accepts TCP connections (or ``proc`` exits)."""
    import socket

    deadline = time.monotonic() + timeout
    last = None
    while True:
        if proc is not None and proc.poll() is not None:
            raise HarnessError(f"{what} exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as e:
            last = e
        if time.monotonic() > deadline:
            raise HarnessError(f"{what} did not listen on {host}:{port} within {timeout}s ({last})")
        time.sleep(0.02)
