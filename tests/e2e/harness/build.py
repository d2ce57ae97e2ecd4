"""Where the built Levee artefacts are.

``LEVEE_BUILD_DIR`` (env) or ``<repo>/build``; ``LEVEE_LEVEED`` picks leveed alone. The test runner builds first;
a missing artefact fails the test with a message saying what to build.
"""

from __future__ import annotations

import os

import pytest

__all__ = ["repo_root", "build_dir", "module_path", "leveed_path", "leveectl_path", "leveed_load_path",
           "require"]

MODULE = "ngx_http_levee_module.so"


def repo_root() -> str:
    # tests/e2e/harness/build.py -> repo
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def build_dir() -> str:
    return os.path.abspath(os.environ.get("LEVEE_BUILD_DIR") or os.path.join(repo_root(), "build"))


def _candidates(rel: str) -> list[str]:
    b = build_dir()
    return [os.path.join(b, rel)]


def _path(rel: str) -> str:
    return _candidates(rel)[0]


def module_path() -> str:
    """``<build>/ngx_http_levee_module.so``."""
    return _path(MODULE)


def leveed_path() -> str:
    """``LEVEE_LEVEED`` (env: a leveed of another build, e.g. under
    ThreadSanitizer) or ``<build>/sidecar/leveed``."""
    return os.environ.get("LEVEE_LEVEED") or _path(os.path.join("sidecar", "leveed"))


def leveectl_path() -> str:
    return _path(os.path.join("sidecar", "leveectl"))


def leveed_load_path() -> str:
    """The load generator of tests/bench/leveed_load.cpp."""
    return _path(os.path.join("tests", "bench", "leveed_load"))


def require(path: str, what: str | None = None) -> str:
    """Return ``path`` if it exists, else fail the test with a clear message."""
    if os.path.isfile(path):
        return path
    pytest.fail(
        f"{what or os.path.basename(path)} not found at {path}: build the project first "
        f"(cmake -S {repo_root()} -B {build_dir()} && cmake --build {build_dir()}) "
        f"or point LEVEE_BUILD_DIR at a build directory",
        pytrace=False)
    raise AssertionError  # unreachable


def require_module() -> str:
    return require(module_path(), "nginx module")


def require_leveed() -> str:
    return require(leveed_path(), "leveed")


def require_leveectl() -> str:
    return require(leveectl_path(), "leveectl")


def require_leveed_load() -> str:
    return require(leveed_load_path(), "leveed_load")
