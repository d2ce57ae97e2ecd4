"""Heartbeats answered at the edge (issue 6): 204 from nginx's shared
memory, flushed in batches through leveed to Redis and MongoDB; presence
queries; no beat answered 204 is lost when leveed, a Redis master or the
database goes away; 503, never 204, when a beat cannot be kept."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
import uuid

import pytest

from harness.beat_stream import BeatStream, RespScore
from harness.leveed import wait_linked
from harness.wait import wait_until
from harness.levee_keys import PRESENCE_TTLS_KEY, last_seen, presence_key, room_key

CONF = """
    levee_sidecar unix:$sock;
    levee_heartbeat_zone size=$size backlog=$backlog;
    server {
        listen 127.0.0.1:$port;
        location = /hb {
            levee_heartbeat key=$arg_u room=$arg_room ttl=$ttl interval=60s interval_max=180s flush=$flush;
        }
        location = /presence { levee_presence timeout=2s; }
    }
"""


def start_nginx(make_nginx, sock, size="16m", backlog=1000000, ttl="180s", flush="250ms", workers=2):
    return make_nginx(CONF, workers=workers, sock=sock, size=size, backlog=backlog, ttl=ttl, flush=flush)




def get(ngx, path):
    conn = http.client.HTTPConnection("127.0.0.1", ngx.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode()
    finally:
        conn.close()


def query(ngx, args):
    status, _, body = get(ngx, "/presence?" + args)
    return status, json.loads(body)


def stats(ngx):
    return query(ngx, "stats")[1]


def metric(leveed, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{leveed.metrics_port}/metrics", timeout=5).read().decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def to_ms(value) -> int:
    if isinstance(value, dt.datetime):
        return round(value.timestamp() * 1000)
    return int(value)


# ------------------------------------------------------------------ the edge


def test_beats_answered_at_the_edge_and_queried(make_leveed, make_nginx, levee_build):
    leveed = make_leveed()                               # standalone: presence in leveed's memory
    ngx = start_nginx(make_nginx, leveed.socket_path)
    wait_linked(leveed, ngx)

    status, headers, body = get(ngx, "/hb?u=alice&room=lobby")
    assert status == 204 and body == "", (status, body)
    assert headers["levee-heartbeat-interval"] == "60"
    assert get(ngx, "/hb?u=bob&room=lobby")[0] == 204
    assert get(ngx, "/hb?u=carol")[0] == 204

    for path, reason in [("/hb?u=", "empty key"), ("/hb?u=" + "x" * 256, "key too long"),
                         ("/hb?u=a\"b", "invalid character in key"), ("/hb?u=ok&room=a\\\\b", "invalid room")]:
        status, _, body = get(ngx, path)
        assert (status, body) == (400, reason + "\n"), path

    wait_until(lambda: stats(ngx)["waiting"] == 0, timeout=5, message="the beats acknowledged by leveed")
    s = stats(ngx)
    assert s["bad_key"] == 4 and s["beats"] == 3 and s["acked"] == 3, s

    status, one = query(ngx, "user=alice")
    assert status == 200 and one["user"] == "alice" and one["online"] is True, one
    assert abs(one["last_seen"] - time.time() * 1000) < 10000
    status, many = query(ngx, "users=alice,nobody,carol")
    assert status == 200 and many["online"] == ["alice", "carol"], many
    assert [u["online"] for u in many["users"]] == [True, False, True]
    status, room = query(ngx, "room=lobby")
    assert status == 200 and room["count"] == 2 and sorted(room["members"]) == ["alice", "bob"], room
    assert query(ngx, "room=lobby&limit=1")[1] == {"room": "lobby", "count": 2, "members": ["bob"]}, \
        "the latest beat first"
    assert query(ngx, "room=empty")[1] == {"room": "empty", "count": 0, "members": []}
    status, err = query(ngx, "bogus=1")
    assert status == 400 and "expected" in err["error"]

    # offline again: still said when it was last seen
    at = int(time.time() * 1000)
    r = subprocess.run([levee_build.leveectl, "--socket", leveed.socket_path, "beat", "dan", "--at", str(at),
                        "--ttl", "1000"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "ok=yes" in r.stdout, r.stdout + r.stderr
    assert query(ngx, "user=dan")[1] == {"user": "dan", "online": True, "last_seen": at}
    time.sleep(1.2)
    assert query(ngx, "user=dan")[1] == {"user": "dan", "online": False, "last_seen": at}


def test_presence_in_the_redis_cluster_moves_forward_and_expires(redis_cluster, make_leveed, make_nginx,
                                                                  levee_build):
    leveed = make_leveed(redis_seeds=redis_cluster.seeds)
    ngx = start_nginx(make_nginx, leveed.socket_path)
    wait_linked(leveed, ngx)
    room = f"lobby-{uuid.uuid4().hex[:8]}"  # its own room: the cluster is shared by the session's tests
    assert get(ngx, f"/hb?u=alice&room={room}")[0] == 204
    assert get(ngx, "/hb?u=carol")[0] == 204
    wait_until(lambda: stats(ngx)["waiting"] == 0, timeout=5, message="the beats acknowledged by leveed")

    def beat(user, at, ttl):   # a record with a chosen last_seen and ttl, as another nginx could send
        r = subprocess.run([levee_build.leveectl, "--socket", leveed.socket_path, "beat", user,
                            "--at", str(at), "--ttl", str(ttl)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "ok=yes" in r.stdout, r.stdout + r.stderr

    now = int(time.time() * 1000)
    beat("bob", now, 1500)                       # a short ttl: gone in 1.5 s
    r = subprocess.run([levee_build.leveectl, "--socket", leveed.socket_path, "beat", "erin", room,
                        "--ttl", "1500"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "ok=yes" in r.stdout, r.stdout + r.stderr
    beat("dave", now - 300000, 600000)           # beat 5 minutes ago, online for 10
    beat("dave", now - 400000, 600000)           # an older beat (a replay) moves nothing back

    key = presence_key("alice")
    score = redis_cluster.cli(redis_cluster.master_for_key(key), "ZSCORE", key, "alice")
    assert abs(last_seen(score) - now) < 10000, score
    assert 180000 < int(redis_cluster.cli(redis_cluster.master_for_key(key), "PTTL", key)) <= 240000
    ttls_key = PRESENCE_TTLS_KEY
    # every ttl in use is where queries look (other tests of the session may have added theirs)
    assert {"1500", "180000", "600000"} <= set(
        redis_cluster.cli(redis_cluster.master_for_key(ttls_key), "SMEMBERS", ttls_key).split())

    status, many = query(ngx, "users=alice,bob,carol,dave,nobody")
    assert status == 200 and many["online"] == ["alice", "bob", "carol", "dave"], many
    dave = query(ngx, "user=dave")[1]
    assert dave["online"] is True and dave["last_seen"] == now - 300000, dave
    members = query(ngx, f"room={room}")[1]
    assert members["count"] == 2 and sorted(members["members"]) == ["alice", "erin"], members
    time.sleep(1.7)
    assert query(ngx, "users=alice,bob")[1]["online"] == ["alice"]
    assert query(ngx, "user=bob")[1]["online"] is False
    # erin's membership of the room expired with her ttl: dropped by the query
    assert query(ngx, f"room={room}")[1] == {"room": room, "count": 1, "members": ["alice"]}
    key = room_key(room)
    assert redis_cluster.cli(redis_cluster.master_for_key(key), "ZSCORE", key, "erin") == ""

    # leveed stuck: the query is answered 504 at its timeout (2 s), the worker free meanwhile
    os.kill(leveed.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        status, body = query(ngx, "user=alice")
        assert status == 504 and "error" in body, (status, body)
        assert 1.8 < time.monotonic() - started < 4
        assert get(ngx, "/hb?u=frank")[0] == 204
    finally:
        os.kill(leveed.proc.pid, signal.SIGCONT)


def test_an_offline_users_last_seen_comes_from_the_database(redis_cluster, make_mongo_db, make_leveed, make_nginx,
                                                            levee_build):
    mongo = make_mongo_db()
    leveed = make_leveed(redis_seeds=redis_cluster.seeds, mongo_uri=mongo.uri, metrics=True,
                         settings={"mongo_flush_ms": 200})
    ngx = start_nginx(make_nginx, leveed.socket_path)
    wait_linked(leveed, ngx)
    # a beat of an hour ago with a 60 s ttl: expired on arrival, so Redis drops
    # it at once and only the database (written behind) knows when "away" was seen
    long_ago = int(time.time() * 1000) - 3600000
    r = subprocess.run([levee_build.leveectl, "--socket", leveed.socket_path, "beat", "away",
                        "--at", str(long_ago), "--ttl", "60000"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "ok=yes" in r.stdout, r.stdout + r.stderr
    wait_until(lambda: any(d["_id"] == "away" for d in mongo.find("levee", "presence", {})), timeout=15,
               message="the beat written behind to the database")
    key = presence_key("away", ttl_ms=60000)
    assert redis_cluster.cli(redis_cluster.master_for_key(key), "ZSCORE", key, "away") == ""

    assert query(ngx, "user=away")[1] == {"user": "away", "online": False, "last_seen": long_ago}
    assert query(ngx, "users=away,nobody")[1]["users"] == [
        {"user": "away", "online": False, "last_seen": long_ago},
        {"user": "nobody", "online": False, "last_seen": None}]

    # the database away: the answer comes without it after the lookup's
    # deadline (300 ms), not at the query's timeout (2 s)
    mongo._stop()
    started = time.monotonic()
    status, one = query(ngx, "user=away")
    assert status == 200 and one == {"user": "away", "online": False, "last_seen": None}, one
    assert time.monotonic() - started < 1.5
    assert metric(leveed, 'leveed_presence_offline_lookups_total{result="ok"}') >= 2
    wait_until(lambda: metric(leveed, 'leveed_presence_offline_lookups_total{result="timeout"}') >= 1,
               timeout=10, message="the late lookup counted as a timeout")


def test_full_table_answers_503_never_204_and_keeps_what_it_answered(make_leveed, make_nginx, tmp_path):
    sock = str(tmp_path / "late.sock")                   # leveed is not there yet
    ngx = start_nginx(make_nginx, sock, size="64k", backlog=50)
    answered = {}
    for i in range(120):
        status, headers, _ = get(ngx, f"/hb?u=user-{i}&room=r")
        assert status in (204, 503), status
        if status == 503:
            assert int(headers["retry-after"]) >= 1
        answered[f"user-{i}"] = status
    ok = [u for u, s in answered.items() if s == 204]
    assert len(ok) == 50, "the backlog bound holds exactly"
    assert get(ngx, "/hb?u=user-0&room=r")[0] == 204, "a user already waiting is still served"
    assert get(ngx, "/hb?u=user-0&room=r")[1]["levee-heartbeat-interval"] == "180", "no leveed: beat less often"
    s = stats(ngx)
    assert s["waiting"] == 50 and s["refused_backlog"] == 70, s

    leveed = make_leveed(socket_path=sock)               # leveed arrives: everything kept is delivered
    wait_until(lambda: stats(ngx)["waiting"] == 0, timeout=15, message="the kept beats acknowledged")
    # one worker's link can flush the shared table before the other links:
    # the query below may reach either
    wait_linked(leveed, ngx)
    status, room = query(ngx, "room=r&limit=1000")
    assert status == 200 and sorted(room["members"]) == sorted(ok), room
    assert leveed.pid


# ------------------------------------------------------------------ no loss


def test_no_beat_lost_through_leveed_kill_redis_failover_and_database_outage(
        redis_cluster, make_mongo_db, make_leveed, make_nginx):
    mongo = make_mongo_db()
    leveed = make_leveed(redis_seeds=redis_cluster.seeds, mongo_uri=mongo.uri, metrics=True, log_level="info",
                         settings={"mongo_flush_ms": 200})
    ngx = start_nginx(make_nginx, leveed.socket_path)
    wait_linked(leveed, ngx)

    stream = BeatStream(ngx, users=300)
    stream.start()
    victim = redis_cluster.masters()[0][0]
    try:
        time.sleep(1.5)
        leveed.kill()                                    # SIGKILL: batches in flight are lost with it
        time.sleep(0.5)
        leveed.start()
        time.sleep(1.5)
        redis_cluster.kill_node(victim)                  # a master dies; its replica takes over
        time.sleep(2.0)
        mongo._stop()                                    # the database goes away...
        time.sleep(2.0)
        mongo.restart()                                  # ...and comes back
        time.sleep(1.0)
    finally:
        stream.finish()
        redis_cluster.restart_node(victim)
    assert not stream.errors, stream.errors[:5]
    assert stream.counts.get(503, 0) == 0 and stream.counts[204] > 1000, stream.counts
    assert len(stream.last) == 300

    wait_until(lambda: stats(ngx)["waiting"] == 0, timeout=30, message="every beat acknowledged by leveed")
    s = stats(ngx)
    assert s["requeued"] > 0, "the kill of leveed sent some batches again"

    def not_in_database():
        docs = {d["_id"]: to_ms(d["last_seen"]) for d in mongo.find("levee", "presence", {})}
        return [(u, docs.get(u), b, a) for u, (b, a) in stream.last.items()
                if docs.get(u) is None or not b <= docs[u] <= a]

    # the spool gauge may still read 0 from before the last batches: wait for the data itself
    try:
        wait_until(lambda: not not_in_database(), timeout=60, message="the last beats in MongoDB")
    except Exception:  # noqa: BLE001
        wrong = not_in_database()
        raise AssertionError(f"{len(wrong)} users whose last beat is not in MongoDB, e.g. {wrong[:5]}")

    redis_cluster.wait_ok(timeout=30)
    docs = {d["_id"]: to_ms(d["last_seen"]) for d in mongo.find("levee", "presence", {})}
    nodes = {}
    wrong = []
    for user in stream.last:
        key = presence_key(user)
        port = redis_cluster.master_for_key(key)
        conn = nodes.setdefault(port, RespScore(port))
        got = last_seen(conn.zscore(key, user))
        if got != docs[user]:
            wrong.append((user, got, docs[user]))
    for conn in nodes.values():
        conn.close()
    assert not wrong, f"{len(wrong)} users whose last beat in Redis differs from MongoDB's, e.g. {wrong[:5]}"
    redis_cluster.wait_ok(timeout=30, require_all=True)


def test_a_room_of_6000_users_backlogged_while_leveed_was_away_all_reach_redis(redis_cluster, make_leveed,
                                                                                 make_nginx):
    # The module flushes a backlog in batches of 4,000 records: all of one
    # room, so one batch carries 4,000 members of it. Such a batch once failed
    # in Redis for good (the script unpacked all its arguments at once) and was
    # sent again forever: only the 2,000 of the last batch ever reached Redis.
    leveed = make_leveed(redis_seeds=redis_cluster.seeds, metrics=True)
    ngx = start_nginx(make_nginx, leveed.socket_path)
    wait_linked(leveed, ngx)
    run = uuid.uuid4().hex[:8]
    room = f"big-{run}"
    leveed.terminate()
    conn = http.client.HTTPConnection("127.0.0.1", ngx.port, timeout=10)
    try:
        for i in range(6000):
            conn.request("GET", f"/hb?u=big-{run}-{i}&room={room}")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 204, (i, resp.status)
    finally:
        conn.close()
    assert stats(ngx)["waiting"] == 6000

    since = len(leveed.log())
    leveed.start()
    wait_until(lambda: stats(ngx)["waiting"] == 0, timeout=60, message="the backlog acknowledged by leveed")
    wait_linked(leveed, ngx, since)
    status, got = query(ngx, f"room={room}&limit=1")
    assert status == 200 and got["count"] == 6000, got
    assert metric(leveed, 'leveed_presence_lost_total{kind="room"}') == 0
    assert metric(leveed, 'leveed_presence_batches_total{result="error"}') == 0


def test_beats_waiting_when_nginx_stops_are_sent_by_the_exiting_workers(redis_cluster, make_leveed, make_nginx):
    # The zone dies with the master: beats answered 204 and not yet flushed
    # were lost by every stop (flush=60s: nothing is flushed before it). The
    # last workers now send them over a connection of their own; workers a
    # reload replaced leave them to their successors, which share the zone.
    leveed = make_leveed(redis_seeds=redis_cluster.seeds)
    ngx = start_nginx(make_nginx, leveed.socket_path, flush="60s")
    wait_linked(leveed, ngx)
    run = uuid.uuid4().hex[:8]
    users = [f"stop-{run}-{i}" for i in range(100)]
    for u in users:
        assert get(ngx, f"/hb?u={u}&room=r-{run}")[0] == 204
    assert stats(ngx)["waiting"] == len(users)

    old = ngx.worker_pids()
    ngx.reload()
    wait_until(lambda: not set(old) & set(ngx.worker_pids()), timeout=15, message="the old workers gone")
    assert "exiting with nobody to take over" not in ngx.error_log()
    assert stats(ngx)["waiting"] == len(users), "what waits stays for the new workers"

    ngx._stop()
    missing = [u for u in users
               if not redis_cluster.cli(redis_cluster.master_for_key(presence_key(u)), "ZSCORE", presence_key(u), u)]
    assert not missing, f"{len(missing)} of {len(users)} beats lost at the stop, e.g. {missing[:3]}"
    assert re.search(r"exiting with nobody to take over the zone: \d+ beats waited, [1-9]\d* batches "
                     r"acknowledged by leveed, 0 left", ngx.error_log())


def test_a_beat_is_in_redis_within_1s_at_p99(redis_cluster, make_leveed, make_nginx):
    leveed = make_leveed(redis_seeds=redis_cluster.seeds, log_level="info")
    ngx = start_nginx(make_nginx, leveed.socket_path)
    wait_linked(leveed, ngx)
    background = BeatStream(ngx, users=200, threads=1)   # other users beating meanwhile
    background.start()
    latencies: list[float] = []
    failures: list[str] = []
    run = int(time.time())

    def sampler(t: int):
        nodes: dict[int, RespScore] = {}
        try:
            for i in range(30):
                user = f"lat-{run}-{t}-{i}"
                key = presence_key(user)
                port = redis_cluster.master_for_key(key)
                conn = nodes.setdefault(port, RespScore(port))
                status, _, _ = get(ngx, f"/hb?u={user}")
                answered = time.monotonic()
                if status != 204:
                    failures.append(f"{user}: {status}")
                    return
                while conn.zscore(key, user) is None:
                    if time.monotonic() - answered > 5:
                        failures.append(f"{user} not in Redis after 5 s")
                        return
                    time.sleep(0.002)
                latencies.append(time.monotonic() - answered)
        finally:
            for conn in nodes.values():
                conn.close()

    threads = [threading.Thread(target=sampler, args=(t,)) for t in range(4)]
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)
    finally:
        background.finish()
    assert not failures, failures[:5]
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[max(0, int(len(latencies) * 0.99) - 1)]
    print(f"\nbeat -> Redis: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms "
          f"({len(latencies)} beats, flush=250ms, 2 workers, 3-master cluster with WAIT 1)")
    assert len(latencies) == 120
    assert p99 < 1.0, latencies[-5:]


@pytest.mark.parametrize("location, reason", [
    ("levee_heartbeat key=$arg_u ttl=0s;", 'invalid time in "ttl=0s"'),
    ("levee_heartbeat key=$arg_u interval_max=soon;", 'invalid time in "interval_max=soon"'),
    ("levee_heartbeat key=$arg_u colour=red;", 'invalid parameter "colour=red"'),
    ("levee_heartbeat ttl=60s;", "levee_heartbeat needs key=$variable"),
    ("levee_presence timeout=-1;", 'invalid time in "timeout=-1"'),
    ("levee_presence wait=1s;", 'invalid parameter "wait=1s"'),
])
def test_bad_heartbeat_directives_fail_nginx_t_with_file_line_and_reason(make_nginx, location, reason):
    n = make_nginx(f"""
    levee_sidecar unix:/tmp/levee-nowhere.sock;
    server {{
        listen 127.0.0.1:$port;
        location / {{ {location} }}
    }}
""", start=False)
    rc, err = n.test_config()
    assert rc != 0, err
    assert reason in err, err
    bad_line = max(i for i, l in enumerate(n.config_text.splitlines(), 1) if "levee_" in l)
    assert f"in {n.conf_path}:{bad_line}" in err, err


@pytest.mark.parametrize("directive", [
    "levee_heartbeat key=$arg_u;",
    "levee_presence;",
])
def test_heartbeat_without_levee_sidecar_fails_nginx_t_at_the_directive(make_nginx, directive):
    # a beat would be answered 204 and never flushed: refused before it runs
    n = make_nginx(f"""
    server {{
        listen 127.0.0.1:$port;
        location /a {{ return 200; }}
        location /b {{ {directive} }}
        location /c {{ {directive} }}
    }}
""", start=False)
    rc, err = n.test_config()
    assert rc != 0, err
    name = directive.split()[0].rstrip(";")
    first = next(i for i, l in enumerate(n.config_text.splitlines(), 1) if name in l)
    assert f"{name} needs levee_sidecar in the http block in {n.conf_path}:{first}" in err, err


def test_a_second_heartbeat_zone_fails_nginx_t_naming_the_first(make_nginx):
    n = make_nginx("""
    levee_sidecar unix:/tmp/levee-nowhere.sock;
    levee_heartbeat_zone size=1m;
    levee_heartbeat_zone size=2m;
    server {
        listen 127.0.0.1:$port;
        location / { levee_heartbeat key=$arg_u; }
    }
""", start=False)
    rc, err = n.test_config()
    assert rc != 0, err
    lines = [i for i, l in enumerate(n.config_text.splitlines(), 1) if "levee_heartbeat_zone" in l]
    assert (f"levee_heartbeat_zone is duplicate (first declared at {n.conf_path}:{lines[0]}; one zone "
            f"serves every location of the http block) in {n.conf_path}:{lines[1]}") in err, err
