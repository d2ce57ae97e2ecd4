"""Fixtures of the Levee end-to-end tests. See README.md."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import build as _build  # noqa: E402
from harness import proc as _proc  # noqa: E402
from harness.leveed import Leveed  # noqa: E402
from harness.mongo_db import MongoDatabase  # noqa: E402
from harness.nginx import Nginx  # noqa: E402
from harness.redis_cluster import TLS_SERVER_NAME, RedisCluster  # noqa: E402
from harness.tls_certs import TlsFiles, make_tls_files  # noqa: E402
from harness.upstream_app import UpstreamApp  # noqa: E402
from harness.wait import wait_until  # noqa: E402,F401  (re-export for tests)


# ------------------------------------------------------------------ session

def pytest_configure(config):
    config.addinivalue_line("markers", "mongo: uses the MongoDB-wire database (set by conftest from the "
                                       "fixtures; `-m mongo` runs them, e.g. against FerretDB)")


def pytest_collection_modifyitems(config, items):
    # A test that talks to the database takes one of these fixtures: marked so,
    # the Mongo-facing tests of a file run against another database alone.
    for item in items:
        if {"mongo_db", "make_mongo_db"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.mongo)


def pytest_sessionfinish(session, exitstatus):
    _proc.kill_all()
    _proc.cleanup_run_dir()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failed test, attach the tails of every live component's logs."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("setup", "call"):
        lines = int(os.environ.get("LEVEE_LOG_TAIL", "30"))
        parts = []
        for c in _proc.live_components():
            try:
                t = c.log_tails(lines)
            except Exception as e:  # noqa: BLE001
                t = f"--- {c!r}: cannot read logs: {e}"
            if t:
                parts.append(t)
        if parts:
            report.sections.append(("levee component logs", "\n".join(parts)))


# ------------------------------------------------------------------ paths

@pytest.fixture(scope="session")
def levee_build():
    """The build directory's artefacts: .module, .leveed, .leveectl,
    .leveed_load (paths; each access fails the test with a clear message if
    it is missing)."""

    class _Build:
        dir = _build.build_dir()

        @property
        def module(self) -> str:
            return _build.require_module()

        @property
        def leveed(self) -> str:
            return _build.require_leveed()

        @property
        def leveectl(self) -> str:
            return _build.require_leveectl()

        @property
        def leveed_load(self) -> str:
            return _build.require_leveed_load()

    return _Build()


# ------------------------------------------------------------------ shared servers

@pytest.fixture(scope="session")
def redis_cluster():
    """A 3-master / 3-replica Redis Cluster shared by the session.

    Tests that break it (kill/freeze/migrate) must leave it healthy again
    (``restart_node`` + ``wait_ok``) or use ``make_redis_cluster``.
    """
    rc = RedisCluster(n_masters=3, replicas=1)
    try:
        rc.start()
        yield rc
    finally:
        rc.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> TlsFiles:
    """Certificates for the session (harness/tls_certs.py): ``ca``; a server
    certificate it signed for ``DNS:redis.levee.test`` (``TLS_SERVER_NAME``
    of harness/redis_cluster.py) and ``IP:127.0.0.1``;
    a client certificate it signed; ``other_ca``, which signed neither."""
    return make_tls_files(tmp_path_factory.mktemp("tls"), san=f"DNS:{TLS_SERVER_NAME},IP:127.0.0.1")


@pytest.fixture(scope="module")
def redis_tls_password():
    """The password of ``redis_tls_cluster``: none. A test file that wants
    one defines a fixture of this name."""
    return None


@pytest.fixture(scope="module")
def redis_tls_cluster(tls_files, redis_tls_password):
    """A 3-master / 3-replica cluster of the test file that speaks TLS only
    (``tls_files``' server certificate; clients must present one signed by
    its CA; cluster bus and replication over TLS), with
    ``redis_tls_password`` if one is set."""
    rc = RedisCluster(n_masters=3, replicas=1, tls=tls_files, password=redis_tls_password)
    try:
        rc.start()
        yield rc
    finally:
        rc.stop()


@pytest.fixture
def make_redis_cluster():
    """Factory for a private cluster: ``make_redis_cluster(n_masters=3, replicas=1,
    password=None, tls=None)``."""
    made: list[RedisCluster] = []

    def factory(n_masters: int = 3, replicas: int = 1, **kw) -> RedisCluster:
        rc = RedisCluster(n_masters=n_masters, replicas=replicas, **kw)
        made.append(rc)
        return rc.start()

    yield factory
    for rc in reversed(made):
        rc.stop()


@pytest.fixture(scope="session")
def mongo_db():
    """A MongoDB-wire server shared by the session; skips if none is available."""
    db = MongoDatabase()
    try:
        db.start()
        yield db
    finally:
        db.stop()


@pytest.fixture
def make_mongo_db():
    """Factory for a private MongoDB-wire server (for restart/pause tests)."""
    made: list[MongoDatabase] = []

    def factory(**kw) -> MongoDatabase:
        db = MongoDatabase(**kw)
        made.append(db)
        return db.start()

    yield factory
    for db in reversed(made):
        db.stop()


# ------------------------------------------------------------------ per test

@pytest.fixture
def make_upstream():
    """``make_upstream(name="app", port=None, start=True) -> UpstreamApp``."""
    made: list[UpstreamApp] = []

    def factory(name: str = "app", port: int | None = None, start: bool = True) -> UpstreamApp:
        app = UpstreamApp(name, port=port)
        made.append(app)
        return app.start() if start else app

    yield factory
    for app in reversed(made):
        app.stop()


@pytest.fixture
def make_leveed(levee_build):
    """``make_leveed(binary=None, socket_path=None, redis_seeds=None,
    mongo_uri=None, extra_config="", start=True, **kw) -> Leveed``
    (binary defaults to the built leveed)."""
    made: list[Leveed] = []

    def factory(binary: str | None = None, socket_path: str | None = None,
                redis_seeds=None, mongo_uri: str | None = None, extra_config: str = "",
                start: bool = True, **kw) -> Leveed:
        d = Leveed(binary or levee_build.leveed, socket_path=socket_path,
                   redis_seeds=redis_seeds, mongo_uri=mongo_uri,
                   extra_config=extra_config, **kw)
        made.append(d)
        return d.start() if start else d

    yield factory
    for d in reversed(made):
        d.stop()


@pytest.fixture
def make_nginx(levee_build):
    """``make_nginx(conf_body, module_path="levee", workers=2, start=True, **subs) -> Nginx``.

    ``module_path="levee"`` loads the built Levee module; ``None`` loads
    nothing; any other string is a path. ``conf_body`` goes inside ``http {}``;
    ``$port`` is the listen port (more via ``ports=("port", "admin")``),
    ``$dir`` the nginx directory, other ``$name`` from ``**subs``.
    """
    made: list[Nginx] = []

    def factory(conf_body: str, module_path: str | None = "levee", workers: int = 2,
                start: bool = True, **kw) -> Nginx:
        if module_path == "levee":
            module_path = levee_build.module
        n = Nginx(conf_body, module_path, workers=workers, **kw)
        made.append(n)
        return n.start() if start else n

    yield factory
    for n in reversed(made):
        n.stop()
