"""A real Redis Cluster of ``redis-server`` processes on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

from . import proc as _proc
from .base import Component
from .ports import free_port
from .proc import ComponentUnavailable, HarnessError
from .tls_certs import TlsFiles

__all__ = ["RedisCluster", "RedisNode", "key_hash_slot", "NSLOTS", "TLS_SERVER_NAME"]

NSLOTS = 16384
HOST = "127.0.0.1"
# The DNS name the nodes' certificate carries besides IP:127.0.0.1
# (conftest's ``tls_files``): CLUSTER SLOTS gives IPs, so a client that
# verifies a name needs one every node shares.
TLS_SERVER_NAME = "redis.levee.test"


# ---------------------------------------------------------------- hash slots

def _crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def key_hash_slot(key: str | bytes) -> int:
    """Redis Cluster's slot of ``key`` (CRC16/XMODEM mod 16384, hash tags)."""
    k = key.encode() if isinstance(key, str) else key
    s = k.find(b"{")
    if s != -1:
        e = k.find(b"}", s + 1)
        if e != -1 and e != s + 1:
            k = k[s + 1:e]
    return _crc16(k) % NSLOTS


# ---------------------------------------------------------------- auth, TLS

def _conf_quote(value: str) -> str:
    """A redis.conf argument that survives spaces, quotes and backslashes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _cli_args(password: str | None, tls: TlsFiles | None) -> list[str]:
    """redis-cli's arguments for a cluster with a password and/or TLS; none
    without. ``--no-auth-warning``: redis-cli would warn on stderr at every
    call. TLS: the harness is a client like leveed, with a client certificate
    (the nodes have ``tls-auth-clients yes``)."""
    args = ["-a", password, "--no-auth-warning"] if password else []
    if tls is not None:
        args += ["--tls", "--cacert", tls.ca, "--cert", tls.client_cert, "--key", tls.client_key]
    return args


# ---------------------------------------------------------------- one node

class RedisNode:
    def __init__(self, port: int, dir: str, password: str | None = None, tls: TlsFiles | None = None) -> None:
        self.port = port
        self.dir = dir
        self.password = password
        self.tls = tls
        self.conf = os.path.join(dir, "redis.conf")
        self.log = os.path.join(dir, "redis.log")
        self.proc: subprocess.Popen | None = None
        self.frozen = False
        with open(self.conf, "w") as f:
            f.write(
                # TLS: no plaintext port (tls-port below)
                f"port {port if tls is None else 0}\n"
                f"bind {HOST}\n"
                "protected-mode no\n"
                "daemonize no\n"
                "cluster-enabled yes\n"
                f"cluster-config-file nodes-{port}.conf\n"
                "cluster-node-timeout 2000\n"
                "repl-diskless-sync-delay 0\n"
                "appendonly no\n"
                'save ""\n'
                f"dir {dir}\n"
                f"logfile {self.log}\n"
                "loglevel notice\n"
            )
            if tls is not None:
                # The cluster bus and replication over TLS too, so CLUSTER
                # SLOTS and redirects name TLS ports. A node presents its
                # server certificate when it is the client (bus, replica to
                # master).
                f.write(f"tls-port {port}\n"
                        "tls-cluster yes\n"
                        "tls-replication yes\n"
                        "tls-auth-clients yes\n"
                        f"tls-cert-file {_conf_quote(tls.server_cert)}\n"
                        f"tls-key-file {_conf_quote(tls.server_key)}\n"
                        f"tls-ca-cert-file {_conf_quote(tls.ca)}\n")
            if password:
                # masterauth: a replica authenticates to its master with it
                f.write(f"requirepass {_conf_quote(password)}\n"
                        f"masterauth {_conf_quote(password)}\n")

    @property
    def addr(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.alive():
            return
        self.frozen = False
        self.proc = _proc.spawn(["redis-server", self.conf],
                                log_path=os.path.join(self.dir, "stdout.log"), cwd=self.dir)

    def wait_ping(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise HarnessError(f"redis-server :{self.port} exited "
                                   f"(code {self.proc.returncode if self.proc else None}):\n"
                                   + _proc.tail(self.log, 20))
            try:
                r = subprocess.run(["redis-cli", "-h", HOST, "-p", str(self.port),
                                    *_cli_args(self.password, self.tls), "PING"],
                                   capture_output=True, text=True, timeout=2)
                if r.stdout.strip() == "PONG":
                    return
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                raise HarnessError(f"redis-server :{self.port} does not answer PING")
            time.sleep(0.03)

    def send_signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is None:
            return
        if sig == signal.SIGKILL:
            _proc.kill_group(self.proc)
        else:
            _proc.terminate_group(self.proc, sig, timeout=10)
        self.frozen = False


# ---------------------------------------------------------------- cluster

class RedisCluster(Component):
    """``n_masters`` masters with ``replicas`` replicas each.

    ``password``: every node gets ``requirepass`` and ``masterauth``, and
    every ``redis-cli`` the harness runs passes it (``-a``). None: no auth.

    ``tls``: (:class:`~harness.tls_certs.TlsFiles`) every node listens with
    TLS only (``port 0``, ``tls-port``), its cluster bus and replication use
    TLS, and clients must present a certificate signed by ``tls.ca``
    (``tls-auth-clients yes``); every ``redis-cli`` the harness runs passes
    ``--tls`` with ``tls.ca`` and the client certificate. ``ports`` and
    ``seeds`` are then TLS ports. None: plain TCP.

    >>> with RedisCluster() as rc:
    ...     rc.cli(rc.master_for_key("k"), "SET", "k", "v")
    """

    kind = "redis-cluster"

    def __init__(self, n_masters: int = 3, replicas: int = 1, start_timeout: float = 30.0,
                 password: str | None = None, tls: TlsFiles | None = None) -> None:
        super().__init__()
        if n_masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self.n_masters = n_masters
        self.n_replicas = replicas
        self.start_timeout = start_timeout
        self.password = password
        self.tls = tls
        self.nodes: dict[int, RedisNode] = {}
        self.dir: str | None = None

    # ----------------------------------------------------------- lifecycle
    def _start(self) -> None:
        for tool in ("redis-server", "redis-cli"):
            if shutil.which(tool) is None:
                raise ComponentUnavailable(f"{tool} not found on PATH (apt-get install redis-server)")
        self.dir = _proc.component_dir("redis")
        n = self.n_masters * (1 + self.n_replicas)
        for _ in range(n):
            port = free_port(max_port=55534, also_free=(10000,))
            d = os.path.join(self.dir, str(port))
            os.makedirs(d)
            self.nodes[port] = RedisNode(port, d, self.password, self.tls)
        for node in self.nodes.values():
            node.start()
        for node in self.nodes.values():
            node.wait_ping()
        r = subprocess.run(
            ["redis-cli", *self.cli_args, "--cluster", "create",
             *[nd.addr for nd in self.nodes.values()],
             "--cluster-replicas", str(self.n_replicas), "--cluster-yes"],
            capture_output=True, text=True, timeout=self.start_timeout)
        with open(os.path.join(self.dir, "cluster-create.log"), "w") as f:
            f.write(r.stdout + r.stderr)
        if r.returncode != 0 or "[OK] All 16384 slots covered" not in r.stdout:
            raise HarnessError("redis-cli --cluster create failed:\n" + r.stdout[-3000:] + r.stderr[-2000:])
        self.wait_ok(self.start_timeout, require_all=True)
        # replicas must have attached before the topology counts as settled
        self._wait_replicas(self.start_timeout)

    def _wait_replicas(self, timeout: float) -> None:
        want = self.n_masters * self.n_replicas
        deadline = time.monotonic() + timeout
        while True:
            try:
                if len(self.replicas_()) >= want and len(self.masters()) >= self.n_masters:
                    return
            except HarnessError:
                pass
            if time.monotonic() > deadline:
                raise HarnessError(f"replicas did not attach within {timeout}s:\n{self.cluster_nodes()}")
            time.sleep(0.1)

    def _stop(self) -> None:
        for node in self.nodes.values():
            node.kill(signal.SIGKILL)

    def log_paths(self) -> list[str]:
        return [n.log for n in self.nodes.values()]

    def pids(self) -> list[int]:
        return [n.pid for n in self.nodes.values() if n.pid]

    def log_tails(self, lines: int = 30) -> str:
        # six nodes: keep the failure report readable
        return super().log_tails(max(5, lines // 3))

    def describe(self) -> str:
        return f"redis-cluster{' (tls)' if self.tls else ''} {','.join(map(str, self.nodes))}"

    # ----------------------------------------------------------- addressing
    @property
    def ports(self) -> list[int]:
        return list(self.nodes)

    @property
    def seeds(self) -> list[str]:
        return [n.addr for n in self.nodes.values()]

    @property
    def seeds_csv(self) -> str:
        return ",".join(self.seeds)

    @property
    def cli_args(self) -> list[str]:
        """What ``redis-cli`` needs besides host and port to talk to a node:
        the password, the TLS files."""
        return _cli_args(self.password, self.tls)

    def _live_ports(self) -> list[int]:
        return [p for p, n in self.nodes.items() if n.alive() and not n.frozen]

    def cli(self, port: int, *args: str, timeout: float = 10.0, check: bool = False,
            cluster_mode: bool = False) -> str:
        """``redis-cli -p port args...``; returns stdout without the trailing newline.

        ``check=True`` raises :class:`HarnessError` on a Redis error reply.
        ``cluster_mode=True`` adds ``-c`` (follow MOVED/ASK).
        """
        argv = ["redis-cli", "-h", HOST, "-p", str(port), *self.cli_args]
        if cluster_mode:
            argv.append("-c")
        argv += [str(a) for a in args]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        out = r.stdout
        if out.endswith("\n"):
            out = out[:-1]
        if check and (r.returncode != 0 or _is_error(out)):
            raise HarnessError(f"redis-cli -p {port} {' '.join(map(str, args))}: {out} {r.stderr}".strip())
        return out

    def _any_cli(self, *args: str, check: bool = True) -> str:
        last = None
        for p in self._live_ports():
            try:
                out = self.cli(p, *args, timeout=3, check=check)
                return out
            except (HarnessError, subprocess.TimeoutExpired) as e:
                last = e
        raise HarnessError(f"no live node answered {' '.join(args)}: {last}")

    def info_cluster(self, port: int) -> dict[str, str]:
        out = self.cli(port, "CLUSTER", "INFO", timeout=3)
        return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)

    def cluster_nodes(self, port: int | None = None) -> str:
        if port is not None:
            return self.cli(port, "CLUSTER", "NODES", timeout=3, check=True)
        return self._any_cli("CLUSTER", "NODES")

    def parse_nodes(self, port: int | None = None) -> list[dict]:
        """``CLUSTER NODES`` as dicts: id, host, port, flags (set), master_id,
        link (connected/disconnected), slots (list of (lo, hi)), myself."""
        out = []
        for line in self.cluster_nodes(port).splitlines():
            f = line.split()
            if len(f) < 8:
                continue
            addr = f[1].split("@")[0]
            host, _, p = addr.rpartition(":")
            flags = set(f[2].split(","))
            slots = []
            for s in f[8:]:
                if s.startswith("["):
                    continue  # migrating/importing markers
                lo, _, hi = s.partition("-")
                slots.append((int(lo), int(hi or lo)))
            out.append({
                "id": f[0], "host": host, "port": int(p) if p else 0, "flags": flags,
                "master_id": None if f[3] == "-" else f[3], "link": f[7],
                "slots": slots, "myself": "myself" in flags,
            })
        return out

    def node_id(self, port: int) -> str:
        return self.cli(port, "CLUSTER", "MYID", timeout=3, check=True).strip()

    def masters(self, port: int | None = None) -> list[tuple[int, str, list[tuple[int, int]]]]:
        """[(port, node_id, [(lo, hi), ...])] of masters that own slots and
        are not flagged failed, sorted by first slot."""
        res = []
        for n in self.parse_nodes(port):
            if "master" in n["flags"] and n["slots"] and not n["flags"] & {"fail", "noaddr"}:
                res.append((n["port"], n["id"], sorted(n["slots"])))
        res.sort(key=lambda m: m[2][0])
        return res

    def replicas_(self, port: int | None = None) -> list[tuple[int, str, str]]:
        """[(port, node_id, master_id)] of replicas not flagged failed."""
        return [(n["port"], n["id"], n["master_id"]) for n in self.parse_nodes(port)
                if "slave" in n["flags"] and not n["flags"] & {"fail", "noaddr"}]

    def replicas(self, port: int | None = None) -> list[tuple[int, str, str]]:
        return self.replicas_(port)

    def replicas_of(self, master_port: int) -> list[int]:
        mid = self.node_id(master_port)
        return [p for p, _, m in self.replicas_() if m == mid]

    def slot_of(self, key: str) -> int:
        """Slot of ``key`` as Redis computes it (``CLUSTER KEYSLOT``)."""
        return int(self._any_cli("CLUSTER", "KEYSLOT", key))

    @staticmethod
    def key_slot(key: str | bytes) -> int:
        """Slot of ``key`` computed locally (no round trip)."""
        return key_hash_slot(key)

    def owner_of_slot(self, slot: int) -> int:
        for port, _id, ranges in self.masters():
            if any(lo <= slot <= hi for lo, hi in ranges):
                return port
        raise HarnessError(f"no master owns slot {slot}")

    def master_for_key(self, key: str) -> int:
        """Port of the master that owns ``key``'s slot."""
        return self.owner_of_slot(key_hash_slot(key))

    def key_for_each_master(self, prefix: str = "k") -> dict[int, str]:
        """{master_port: key} with one key ``prefix<n>`` per master."""
        masters = self.masters()
        res: dict[int, str] = {}
        i = 0
        while len(res) < len(masters):
            key = f"{prefix}{i}"
            slot = key_hash_slot(key)
            for port, _id, ranges in masters:
                if port not in res and any(lo <= slot <= hi for lo, hi in ranges):
                    res[port] = key
            i += 1
            if i > 1_000_000:
                raise HarnessError("could not find a key for every master")
        return res

    # ----------------------------------------------------------- faults
    def kill_node(self, port: int, sig: int = signal.SIGKILL) -> None:
        self.nodes[port].kill(sig)

    def freeze_node(self, port: int) -> None:
        """SIGSTOP: the node stops answering but keeps its sockets open."""
        node = self.nodes[port]
        node.send_signal(signal.SIGSTOP)
        node.frozen = True

    def thaw_node(self, port: int) -> None:
        node = self.nodes[port]
        node.send_signal(signal.SIGCONT)
        node.frozen = False

    def restart_node(self, port: int, wait: bool = True) -> None:
        """Kill (if running) and start the node again with the same config
        and ``nodes-<port>.conf``: it rejoins the cluster (a former master
        comes back as a replica if it was failed over)."""
        node = self.nodes[port]
        if node.alive():
            node.kill(signal.SIGKILL)
        node.start()
        if wait:
            node.wait_ping()

    def wait_ok(self, timeout: float = 20.0, require_all: bool = False) -> None:
        """Wait until every live, unfrozen node says ``cluster_state:ok`` with
        all 16384 slots assigned and ok, and every slot's master (as each node
        sees it) is a live, unfrozen node. ``require_all``: every node must be
        live."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            ok, last = self._check_ok(require_all)
            if ok:
                return
            if time.monotonic() > deadline:
                raise HarnessError(f"cluster not ok after {timeout}s: {last}")
            time.sleep(0.1)

    def _check_ok(self, require_all: bool) -> tuple[bool, str]:
        live = self._live_ports()
        if not live:
            return False, "no live node"
        if require_all and len(live) != len(self.nodes):
            return False, "not every node is up"
        for p in live:
            try:
                info = self.info_cluster(p)
            except subprocess.TimeoutExpired:
                return False, f":{p} timed out"
            if info.get("cluster_state") != "ok":
                return False, f":{p} cluster_state={info.get('cluster_state')}"
            if info.get("cluster_slots_assigned") != str(NSLOTS) or info.get("cluster_slots_ok") != str(NSLOTS):
                return False, f":{p} slots assigned={info.get('cluster_slots_assigned')} ok={info.get('cluster_slots_ok')}"
            try:
                covered = 0
                for mport, _id, ranges in self.masters(p):
                    if mport not in live:
                        return False, f":{p} sees slots on unreachable master :{mport}"
                    covered += sum(hi - lo + 1 for lo, hi in ranges)
            except (HarnessError, subprocess.TimeoutExpired) as e:
                return False, f":{p} {e}"
            if covered != NSLOTS:
                return False, f":{p} masters cover {covered} slots"
        if require_all:
            # A node brought back is a replica that must sync first: until
            # then WAIT sees no replica, and leveed does not acknowledge
            # presence on its master (redis_wait_replicas 1).
            for p in live:
                try:
                    repl = self.cli(p, "INFO", "replication")
                except subprocess.TimeoutExpired:
                    return False, f":{p} timed out"
                if "role:slave" in repl and "master_link_status:up" not in repl:
                    return False, f":{p} replica not in sync with its master yet"
            # A replica's link is up before its master counts it for WAIT:
            # after a full sync the master waits for the replica's first
            # REPLCONF ACK (sent once a second). Only a write that WAIT sees
            # replicated proves leveed's first acknowledged beat will be.
            try:
                replicas = self.replicas_()
                for mport, key in self.key_for_each_master("levee-harness-sync-").items():
                    mid = self.node_id(mport)
                    want = sum(1 for _p, _id, m in replicas if m == mid)
                    if want and self._replicated_write(mport, key, want) < want:
                        return False, f":{mport} WAIT does not see its {want} replica(s) yet"
            except (HarnessError, subprocess.TimeoutExpired, ValueError) as e:
                return False, f"replication check: {e}"
        return True, "ok"

    def _replicated_write(self, port: int, key: str, want: int) -> int:
        """Replicas (up to ``want``) that acknowledge a short-lived write to
        master ``port`` within 200 ms; one connection, as WAIT counts that
        client's writes."""
        argv = ["redis-cli", "-h", HOST, "-p", str(port), *self.cli_args]
        r = subprocess.run(argv, input=f"SET {key} 1 PX 1000\nWAIT {want} 200\n", capture_output=True,
                           text=True, timeout=5)
        lines = r.stdout.split()
        if r.returncode != 0 or len(lines) < 2:
            raise HarnessError(f"redis-cli -p {port} SET/WAIT: {r.stdout} {r.stderr}".strip())
        return int(lines[-1])

    def migrate_slot(self, slot: int, src_port: int, dst_port: int, batch: int = 100,
                     timeout_ms: int = 5000) -> int:
        """Move ``slot`` (and its keys) from master ``src_port`` to master
        ``dst_port`` the way ``redis-cli --cluster reshard`` does. Returns the
        number of keys moved."""
        src_id, dst_id = self.node_id(src_port), self.node_id(dst_port)
        self.cli(dst_port, "CLUSTER", "SETSLOT", slot, "IMPORTING", src_id, check=True)
        self.cli(src_port, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id, check=True)
        moved = 0
        while True:
            out = self.cli(src_port, "CLUSTER", "GETKEYSINSLOT", slot, batch, check=True)
            keys = [k for k in out.splitlines() if k]
            if not keys:
                break
            # the source node connects to the destination: it must AUTH too
            auth = ["AUTH", self.password] if self.password else []
            r = self.cli(src_port, "MIGRATE", HOST, dst_port, "", 0, timeout_ms, "REPLACE",
                         *auth, "KEYS", *keys, check=True)
            if r.strip() not in ("OK", "NOKEY"):
                raise HarnessError(f"MIGRATE answered {r!r}")
            moved += len(keys)
        self.cli(dst_port, "CLUSTER", "SETSLOT", slot, "NODE", dst_id, check=True)
        self.cli(src_port, "CLUSTER", "SETSLOT", slot, "NODE", dst_id, check=True)
        for mport, _id, _r in self.masters(dst_port):
            if mport not in (src_port, dst_port) and mport in self._live_ports():
                self.cli(mport, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        return moved

    def flushall(self) -> None:
        """FLUSHALL on every live master."""
        for port, _id, _r in self.masters():
            self.cli(port, "FLUSHALL", check=True)


def _is_error(out: str) -> bool:
    first = out.split("\n", 1)[0]
    return first.startswith(("ERR", "(error)", "WRONGTYPE", "MOVED", "ASK", "CLUSTERDOWN",
                             "NOSCRIPT", "BUSY", "LOADING", "READONLY", "IOERR", "NOAUTH",
                             "Could not connect"))
