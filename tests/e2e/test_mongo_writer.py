"""leveed's presence writer against the real database: what it refuses or
lacks never stops the writing. A changed mongo_ttl_s changes the TTL index
(its creation used to fail with IndexOptionsConflict and nothing was written
again); a database without TTL indexes (FerretDB) is said once and written
anyway; a record that is not valid UTF-8, or that the database refuses, is
counted as lost and passed over instead of blocking every record behind it."""

from __future__ import annotations

import re
import subprocess
import urllib.request

import pytest

from harness.wait import wait_until


def metric(leveed, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{leveed.metrics_port}/metrics", timeout=5).read().decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def beat(levee_build, leveed, user: bytes | str, room: bytes | str = b"") -> None:
    argv = [levee_build.leveectl, "--socket", leveed.socket_path, "beat", user] + ([room] if room else [])
    r = subprocess.run([a.encode() if isinstance(a, str) else a for a in argv], capture_output=True, timeout=30)
    assert r.returncode == 0 and b"ok=yes" in r.stdout, r.stdout + r.stderr


def in_database(mongo, user: str) -> bool:
    return mongo.find_one("levee", "presence", {"_id": user}) is not None


def ttl_index(mongo) -> dict | None:
    indexes = mongo.command("levee", {"listIndexes": "presence"})["cursor"]["firstBatch"]
    return next((i for i in indexes if i.get("key") == {"last_seen": 1}), None)


def has_ttl_indexes(mongo) -> bool:
    """Whether the database makes TTL indexes (FerretDB v1 does not), asked on a scratch collection."""
    reply = mongo.command("levee_probe", {"createIndexes": "ttl", "indexes": [
        {"key": {"at": 1}, "name": "at_ttl", "expireAfterSeconds": 60}]}, check=False)
    return reply.get("ok") in (1, 1.0, True)


def writer(make_leveed, cluster, mongo, **settings):
    return make_leveed(redis_seeds=cluster.seeds, mongo_uri=mongo.uri, metrics=True, log_level="info",
                       settings={"mongo_flush_ms": 100, **settings})


def test_a_changed_mongo_ttl_s_changes_the_index_and_writing_goes_on(redis_cluster, make_mongo_db, make_leveed,
                                                                      levee_build):
    mongo = make_mongo_db()
    if not has_ttl_indexes(mongo):
        pytest.skip("the database has no TTL indexes: test_without_ttl_indexes_... covers it")
    leveed = writer(make_leveed, redis_cluster, mongo, mongo_ttl_s=86400)
    beat(levee_build, leveed, "before-change")
    wait_until(lambda: in_database(mongo, "before-change"), timeout=30, message="the first beat in the database")
    assert int(ttl_index(mongo)["expireAfterSeconds"]) == 86400

    leveed.settings["mongo_ttl_s"] = "3600"
    leveed.restart()
    beat(levee_build, leveed, "after-change")
    # createIndexes now conflicts with the index of 86400 s (IndexOptionsConflict)
    wait_until(lambda: in_database(mongo, "after-change"), timeout=30,
               message="a beat in the database after the restart with another mongo_ttl_s")
    wait_until(lambda: int(ttl_index(mongo)["expireAfterSeconds"]) == 3600, timeout=30,
               message="the TTL index changed to 3600 s")
    assert metric(leveed, "leveed_mongo_ttl_index") == 1


def test_without_ttl_indexes_leveed_says_so_once_and_keeps_writing(redis_cluster, make_mongo_db, make_leveed,
                                                                    levee_build):
    mongo = make_mongo_db()
    if has_ttl_indexes(mongo):
        pytest.skip("the database has TTL indexes: test_a_changed_mongo_ttl_s_... covers them")
    leveed = writer(make_leveed, redis_cluster, mongo)
    for user in ("no-ttl-1", "no-ttl-2"):
        beat(levee_build, leveed, user)
        wait_until(lambda: in_database(mongo, user), timeout=30, message=f"{user} in the database")
    said = re.findall(r" warn mongo_ttl_index_unsupported .*", leveed.log())
    assert len(said) == 1, said
    assert "does not expire presence documents" in said[0] and "delete documents with last_seen older" in said[0]
    assert metric(leveed, "leveed_mongo_ttl_index") == 0


def test_a_record_that_is_not_utf8_is_lost_alone_not_with_the_records_behind_it(
        redis_cluster, make_mongo_db, make_leveed, levee_build):
    """libmongoc sends a user or room that is not UTF-8 as it is, and
    SecantusDB refuses the whole command ("invalid BSON in body"): the batch
    failed every round, for good, and nothing behind it was written."""
    mongo = make_mongo_db()
    leveed = writer(make_leveed, redis_cluster, mongo)
    beat(levee_build, leveed, "bad-room", b"lobby-\xff\xfe")
    beat(levee_build, leveed, b"bad-user-\xc3\x28")
    for user in ("good-1", "good-2"):
        beat(levee_build, leveed, user, "lobby")
    wait_until(lambda: in_database(mongo, "good-1") and in_database(mongo, "good-2"), timeout=30,
               message="the valid records in the database")
    wait_until(lambda: metric(leveed, "leveed_spool_pending_records") == 0, timeout=30,
               message="the spool checkpoint past the refused records")
    assert metric(leveed, 'leveed_mongo_records_lost_total{reason="invalid"}') == 2
    assert not in_database(mongo, "bad-room")
    lost = re.findall(r" warn mongo_record_lost .*", leveed.log())
    assert len(lost) == 2 and any("user=bad-user-\\xc3(" in line for line in lost), lost


def test_a_record_the_database_refuses_is_lost_alone_and_the_spool_moves_on(
        redis_cluster, make_mongo_db, make_leveed, levee_build):
    """A unique index on room (an operator's) makes the database refuse one
    upsert with a write error: the batch used to be sent again forever, the
    spool never moving past it."""
    mongo = make_mongo_db()
    mongo.command("levee", {"createIndexes": "presence", "indexes": [
        {"key": {"room": 1}, "name": "room_unique", "unique": True}]})
    mongo.command("levee", {"insert": "presence", "documents": [{"_id": "holder", "room": "taken"}]})
    leveed = writer(make_leveed, redis_cluster, mongo)
    beat(levee_build, leveed, "intruder", "taken")
    beat(levee_build, leveed, "fine-1", "free-1")
    beat(levee_build, leveed, "fine-2", "free-2")
    wait_until(lambda: in_database(mongo, "fine-1") and in_database(mongo, "fine-2"), timeout=30,
               message="the other records in the database")
    wait_until(lambda: metric(leveed, "leveed_spool_pending_records") == 0, timeout=30,
               message="the spool checkpoint past the refused record")
    assert metric(leveed, 'leveed_mongo_records_lost_total{reason="refused"}') == 1
    assert not in_database(mongo, "intruder")
    leveed.wait_for_log(r" warn mongo_record_lost user=intruder records=1 reason=refused ")
    # and the writer goes on: a later record arrives too
    beat(levee_build, leveed, "fine-3", "free-3")
    wait_until(lambda: in_database(mongo, "fine-3"), timeout=30, message="a later record in the database")
