"""leveed's presence path against the real stores: every acknowledged record
reaches Redis and, through the on-disk spool, MongoDB — also when the
database goes away mid-stream and when leveed is killed with a full spool."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import time
import urllib.request

from harness.wait import wait_until
from harness.levee_keys import last_seen, presence_key

USERS = 3000
BATCH = 100


def metric(leveed, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{leveed.metrics_port}/metrics", timeout=5).read().decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def start_stream(levee_build, leveed, seconds: int, out):
    return subprocess.Popen([levee_build.leveed_load, "--socket", leveed.socket_path, "presence-stream",
                             str(seconds), str(USERS), str(BATCH), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def acknowledged(out) -> dict[str, int]:
    return {u: int(v) for u, v in (line.split() for line in open(out).read().splitlines())}


def to_ms(value) -> int:
    if isinstance(value, dt.datetime):
        return round(value.timestamp() * 1000)
    return int(value)


def assert_database_holds(mongo, expected: dict[str, int]) -> None:
    docs = {d["_id"]: to_ms(d["last_seen"]) for d in mongo.find("levee", "presence", {})}
    missing = [u for u in expected if u not in docs]
    wrong = {u: (docs[u], v) for u, v in expected.items() if u in docs and docs[u] != v}
    assert not missing, f"{len(missing)} users missing from MongoDB, e.g. {missing[:5]}"
    assert not wrong, f"{len(wrong)} users with another last_seen, e.g. {list(wrong.items())[:5]}"


def assert_redis_holds(cluster, expected: dict[str, int], sample: int = 40) -> None:
    for user in list(expected)[:: max(1, len(expected) // sample)]:
        key = presence_key(user)
        got = last_seen(cluster.cli(cluster.master_for_key(key), "ZSCORE", key, user) or None)
        assert got == expected[user], (user, got, expected[user])


def stream_while_the_database_is_away(levee_build, leveed, cluster, tmp_path) -> None:
    """4 s of presence batches: every one is acknowledged at once, none sent
    again, and every user's record is in Redis."""
    out = tmp_path / "acked.txt"
    stream = start_stream(levee_build, leveed, 4, out)
    stream_out, _ = stream.communicate(timeout=60)
    assert stream.returncode == 0, stream_out
    assert "resends=0" in stream_out, f"a batch was refused: {stream_out}"
    expected = acknowledged(out)
    assert len(expected) == USERS
    assert_redis_holds(cluster, expected)


def presence_leveed(make_leveed, cluster, mongo):
    return make_leveed(redis_seeds=cluster.seeds, mongo_uri=mongo.uri, metrics=True, log_level="info",
                       settings={"mongo_flush_ms": 200})


def test_database_stopped_mid_stream_loses_nothing(redis_cluster, make_mongo_db, make_leveed, levee_build,
                                                    tmp_path):
    mongo = make_mongo_db()
    leveed = presence_leveed(make_leveed, redis_cluster, mongo)
    out = tmp_path / "acked.txt"
    stream = start_stream(levee_build, leveed, 6, out)
    time.sleep(2)
    mongo._stop()                                  # the database goes away...
    wait_until(lambda: metric(leveed, 'leveed_mongo_batches_total{result="error"}') > 0, timeout=15,
               message="a failed bulk write while the database is down")
    spooled_while_down = metric(leveed, "leveed_spool_pending_records")
    time.sleep(3)
    mongo.restart()                                # ...and comes back
    stream_out, _ = stream.communicate(timeout=60)
    assert stream.returncode == 0, stream_out
    expected = acknowledged(out)
    assert len(expected) == USERS
    wait_until(lambda: metric(leveed, "leveed_spool_pending_records") == 0, timeout=120,
               message="the spool to drain into MongoDB")
    assert spooled_while_down > 0
    assert_database_holds(mongo, expected)
    assert_redis_holds(redis_cluster, expected)


def test_leveed_killed_with_a_full_spool_replays_it(redis_cluster, make_mongo_db, make_leveed, levee_build,
                                                    tmp_path):
    mongo = make_mongo_db()
    leveed = presence_leveed(make_leveed, redis_cluster, mongo)
    mongo._stop()
    out = tmp_path / "acked.txt"
    stream = start_stream(levee_build, leveed, 6, out)
    time.sleep(2.5)
    pending = metric(leveed, "leveed_spool_pending_records")
    leveed.kill()                                  # SIGKILL with records only in the spool
    time.sleep(0.5)
    leveed.start()                                 # the stream client reconnects and resends
    stream_out, _ = stream.communicate(timeout=60)
    assert stream.returncode == 0, stream_out
    assert "reconnects=0" not in stream_out, "the stream never noticed leveed die"
    assert pending > 0
    assert re.search(r"spool_opened .*pending_records=[1-9]", leveed.log()), "restart found an empty spool"
    mongo.restart()
    expected = acknowledged(out)
    wait_until(lambda: metric(leveed, "leveed_spool_pending_records") == 0, timeout=120,
               message="the spool to drain into MongoDB")
    assert_database_holds(mongo, expected)
    assert_redis_holds(redis_cluster, expected)


def test_sigterm_drains_and_spool_survives(redis_cluster, make_mongo_db, make_leveed, levee_build, tmp_path):
    mongo = make_mongo_db()
    leveed = presence_leveed(make_leveed, redis_cluster, mongo)
    r = subprocess.run([levee_build.leveectl, "--socket", leveed.socket_path, "beat", "drain-user", "lobby"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "ok=yes" in r.stdout, r.stdout + r.stderr
    assert leveed.terminate() == 0
    log = leveed.log()
    assert "draining signal=SIGTERM" in log and "drained" in log
    leveed.start()
    wait_until(lambda: mongo.find_one("levee", "presence", {"_id": "drain-user"}), timeout=30,
               message="the drained beat in MongoDB")
    doc = mongo.find_one("levee", "presence", {"_id": "drain-user"})
    assert doc["room"] == "lobby"


def test_spool_fsync_always_acknowledges_synced_batches_and_drains(redis_cluster, make_mongo_db, make_leveed,
                                                                   levee_build, tmp_path):
    # The syncs run on the spool's thread and each ack waits for its batch's:
    # a stream still gets every batch acknowledged, every acknowledged record
    # reaches both stores, and a drain waits for the last sync.
    mongo = make_mongo_db()
    leveed = make_leveed(redis_seeds=redis_cluster.seeds, mongo_uri=mongo.uri, metrics=True, log_level="info",
                         settings={"mongo_flush_ms": 200, "spool_fsync": "always"})
    out = tmp_path / "acked.txt"
    stream = start_stream(levee_build, leveed, 3, out)
    stream_out, _ = stream.communicate(timeout=60)
    assert stream.returncode == 0, stream_out
    expected = acknowledged(out)
    assert len(expected) == USERS
    wait_until(lambda: metric(leveed, "leveed_spool_pending_records") == 0, timeout=120,
               message="the spool to drain into MongoDB")
    assert metric(leveed, 'leveed_spool_dropped_records_total{reason="disk"}') == 0
    assert_database_holds(mongo, expected)
    assert_redis_holds(redis_cluster, expected)
    assert leveed.terminate() == 0
    assert "drained" in leveed.log() and "spool_sync_failed" not in leveed.log()


def test_a_beat_sent_again_after_a_newer_one_does_not_move_the_room_back(redis_cluster, mongo_db, make_leveed,
                                                                          levee_build):
    # The module sends a batch again when its ack is lost; by then a newer
    # beat of the user may be in the database. last_seen kept the newer time
    # ($max) but the room was $set to the older beat's.
    leveed = presence_leveed(make_leveed, redis_cluster, mongo_db)
    run = os.urandom(4).hex()
    user, marker = f"mover-{run}", f"marker-{run}"
    now = int(time.time() * 1000)

    def beat(who, room, at):
        r = subprocess.run([levee_build.leveectl, "--socket", leveed.socket_path, "beat", who, room, "--at", str(at)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "ok=yes" in r.stdout, r.stdout + r.stderr

    beat(user, "kitchen", now)
    wait_until(lambda: mongo_db.find_one("levee", "presence", {"_id": user}), timeout=30,
               message="the newer beat in MongoDB")
    beat(user, "hall", now - 5000)                 # the older beat, sent again
    beat(marker, "hall", now)                      # the spool is written in order
    wait_until(lambda: mongo_db.find_one("levee", "presence", {"_id": marker}), timeout=30,
               message="the beats after it in MongoDB")
    doc = mongo_db.find_one("levee", "presence", {"_id": user})
    assert (to_ms(doc["last_seen"]), doc["room"]) == (now, "kitchen")
    # a newer beat still moves both
    beat(user, "garden", now + 1000)
    wait_until(lambda: mongo_db.find_one("levee", "presence", {"_id": user})["room"] == "garden", timeout=30,
               message="the newest room")
    assert to_ms(mongo_db.find_one("levee", "presence", {"_id": user})["last_seen"]) == now + 1000


def test_a_beat_its_master_could_not_replicate_is_not_acknowledged(redis_cluster, make_leveed, levee_build):
    # WAIT 1 answered 0: the replica is frozen. Redis ran the write, but its
    # master killed now would take it along, so leveed must not acknowledge
    # it (the module keeps the beat and sends it again). It did.
    leveed = make_leveed(redis_seeds=redis_cluster.seeds, metrics=True,
                         settings={"redis_wait_replicas": 1, "redis_wait_timeout_ms": 100})
    user = f"unreplicated-{os.urandom(4).hex()}"
    beat = [levee_build.leveectl, "--socket", leveed.socket_path, "beat", user]
    replicas = redis_cluster.replicas_of(redis_cluster.master_for_key(presence_key(user)))
    assert replicas
    for port in replicas:
        redis_cluster.freeze_node(port)
    try:
        r = subprocess.run(beat, capture_output=True, text=True, timeout=30)
    finally:
        for port in replicas:
            redis_cluster.thaw_node(port)
    assert r.returncode == 1 and "ok=no" in r.stdout and "not replicated" in r.stdout, r.stdout + r.stderr
    assert metric(leveed, 'leveed_presence_batches_total{result="unreplicated"}') == 1
    # the client's counts are published on a timer
    wait_until(lambda: metric(leveed, "leveed_redis_unreplicated_total") > 0, timeout=30,
               message="leveed_redis_unreplicated_total counts the short WAIT")
    # the same beat, sent again once the replica is back, is acknowledged
    wait_until(lambda: subprocess.run(beat, capture_output=True, timeout=30).returncode == 0, timeout=30,
               message="the beat acknowledged once its replica confirms it")


def test_standalone_mode_needs_no_other_server(make_leveed, levee_build):
    leveed = make_leveed()
    assert "standalone_mode" in leveed.log()
    r = subprocess.run([levee_build.leveectl, "--socket", leveed.socket_path, "beat", "solo"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "ok=yes" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([levee_build.leveectl, "--admin-socket", leveed.admin_socket_path, "probe", "k", "v"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "no Redis Cluster configured" in r.stdout


def test_scripts_are_reloaded_after_script_flush(redis_cluster, make_leveed, levee_build):
    leveed = make_leveed(redis_seeds=redis_cluster.seeds)
    beat = [levee_build.leveectl, "--socket", leveed.socket_path, "beat"]
    assert subprocess.run(beat + ["before-flush"], capture_output=True, timeout=30).returncode == 0
    for port, _id, _ranges in redis_cluster.masters():
        assert redis_cluster.cli(port, "SCRIPT", "FLUSH") == "OK"
    r = subprocess.run(beat + ["after-flush"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "ok=yes" in r.stdout, r.stdout + r.stderr
    key = presence_key("after-flush")
    assert redis_cluster.cli(redis_cluster.master_for_key(key), "ZSCORE", key, "after-flush")


def test_a_full_spool_costs_the_database_copy_not_the_ack(redis_cluster, make_mongo_db, make_leveed, levee_build,
                                                          tmp_path):
    """spool_max_bytes reached while the database is away: every batch is
    still acknowledged at once and in Redis; what the spool could not take is
    counted and said once (it used to fail every ack, Redis included)."""
    mongo = make_mongo_db()
    leveed = make_leveed(redis_seeds=redis_cluster.seeds, mongo_uri=mongo.uri, metrics=True, log_level="info",
                         settings={"mongo_flush_ms": 200, "spool_max_bytes": "1m"})
    mongo._stop()
    stream_while_the_database_is_away(levee_build, leveed, redis_cluster, tmp_path)
    wait_until(lambda: metric(leveed, 'leveed_spool_dropped_records_total{reason="full"}') > 0, timeout=15,
               message="records counted as dropped by a full spool")
    assert metric(leveed, "leveed_spool_pending_bytes") <= 1 << 20
    assert len(re.findall(r" warn spool_dropping reason=full ", leveed.log())) == 1, leveed.log()[-3000:]
    mongo.restart()


def test_a_corrupt_spool_record_is_skipped_and_said_and_the_rest_reaches_the_database(
        redis_cluster, make_mongo_db, make_leveed, levee_build, tmp_path):
    """A byte flipped in the spool while leveed was down: leveed starts, says
    which record it skips (at error level, and in a counter), and every other
    spooled record still reaches MongoDB. A corrupt record used to be cut off
    with everything after it (in the last segment), or stop the start."""
    mongo = make_mongo_db()
    leveed = presence_leveed(make_leveed, redis_cluster, mongo)
    mongo._stop()                                  # everything stays in the spool
    out = tmp_path / "acked.txt"
    stream = start_stream(levee_build, leveed, 2, out)
    stream_out, _ = stream.communicate(timeout=60)
    assert stream.returncode == 0, stream_out
    leveed.kill()

    segments = sorted(f for f in os.listdir(leveed.spool_dir) if f.startswith("spool-"))
    path = os.path.join(leveed.spool_dir, segments[0])
    data = bytearray(open(path, "rb").read())
    at = 0
    for _ in range(10):                            # the 11th record of the spool
        at += 8 + int.from_bytes(data[at:at + 4], "big")
    length = int.from_bytes(data[at:at + 4], "big")
    user_len = int.from_bytes(data[at + 8:at + 10], "big")
    damaged_user = data[at + 10:at + 10 + user_len].decode()
    data[at + 8 + 3] ^= 0x5a                       # a byte of its user name
    open(path, "wb").write(bytes(data))

    leveed.start()
    leveed.wait_for_log(rf" error spool_corrupt_record segment=\d+ offset={at} bytes={8 + length} ")
    assert metric(leveed, "leveed_spool_corrupt_records_total") == 1
    mongo.restart()
    wait_until(lambda: metric(leveed, "leveed_spool_pending_records") == 0, timeout=120,
               message="the spool to drain into MongoDB")
    expected = acknowledged(out)
    # The stream beats its users in turn, so the damaged record's user has
    # later beats in the spool: its newest last_seen still arrives.
    assert damaged_user in expected
    assert_database_holds(mongo, expected)


def test_a_full_disk_costs_the_database_copy_not_the_ack(redis_cluster, make_mongo_db, make_leveed, levee_build,
                                                         tmp_path):
    """The spool's file system fills up (a 2 MiB tmpfs, all but 64 KiB of it
    taken by another file) long before spool_max_bytes while the database is
    away: every batch is still acknowledged and in Redis, what the disk could
    not take is counted, and leveed keeps serving."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(disk)], check=True)
    try:
        (disk / "filler").write_bytes(b"\0" * (2 * 1024 * 1024 - 64 * 1024))
        spool = disk / "spool"
        spool.mkdir()
        mongo = make_mongo_db()
        leveed = make_leveed(redis_seeds=redis_cluster.seeds, mongo_uri=mongo.uri, metrics=True, log_level="info",
                             settings={"mongo_flush_ms": 200, "spool_dir": str(spool), "spool_max_bytes": "1g"})
        mongo._stop()
        stream_while_the_database_is_away(levee_build, leveed, redis_cluster, tmp_path)
        text = urllib.request.urlopen(f"http://127.0.0.1:{leveed.metrics_port}/metrics", timeout=5).read().decode()
        dropped = sum(float(v) for v in re.findall(r"^leveed_spool_dropped_records_total\{[^}]*\} (\S+)$", text, re.M))
        assert dropped > 0, [line for line in text.splitlines() if "spool" in line]
        assert leveed.proc.poll() is None
        mongo.restart()
        leveed.stop()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
