"""Every Redis script in lua/ runs here against a real redis-server, exactly
as leveed embeds it (the file's text, by EVALSHA after SCRIPT LOAD)."""

from __future__ import annotations

import glob
import os
import subprocess
import time

import pytest

from harness import proc
from harness.levee_keys import limit_key, room_key
from harness.ports import free_port

LUA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "lua")
TESTED = {"presence_room", "presence_room_query", "limit_lease"}


class Redis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.shas: dict[str, str] = {}

    def cli(self, *args) -> str:
        r = subprocess.run(["redis-cli", "-p", str(self.port), *map(str, args)], capture_output=True, text=True,
                           timeout=10)
        return r.stdout.strip()

    def script(self, name: str, keys: list[str], args: list) -> str:
        if name not in self.shas:
            source = open(os.path.join(LUA_DIR, f"{name}.lua")).read()
            self.shas[name] = self.cli("SCRIPT", "LOAD", source)
        return self.cli("EVALSHA", self.shas[name], len(keys), *keys, *args)


@pytest.fixture(scope="module")
def redis():
    d = proc.component_dir("redis-lua")
    port = free_port()
    p = proc.spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", d], log_path=os.path.join(d, "redis.log"))
    try:
        proc.wait_port("127.0.0.1", port, 10, p, what="redis-server")
        yield Redis(port)
    finally:
        proc.terminate_group(p)


def test_every_script_has_a_test_here():
    scripts = {os.path.basename(f)[:-4] for f in glob.glob(os.path.join(LUA_DIR, "*.lua"))}
    assert scripts <= TESTED, f"scripts without a test in {__file__}: {sorted(scripts - TESTED)}"


# ---------------------------------------------------------------- presence_room(_query)

def test_presence_room_only_moves_members_forward(redis):
    room = room_key("lobby")
    now = int(time.time() * 1000)
    assert redis.script("presence_room", [room], [now + 60000, "ann", now + 60000, "ben"]) == "2"
    # an older expiry for ann (a replay) is ignored, a newer one for ben moves him
    assert redis.script("presence_room", [room], [now + 1000, "ann", now + 90000, "ben"]) == "1"
    assert redis.cli("ZSCORE", room, "ann") == str(now + 60000)
    assert redis.cli("ZSCORE", room, "ben") == str(now + 90000)
    # the set lives as long as its latest member (+1 s)
    assert 89000 < int(redis.cli("PTTL", room)) <= 91000


def test_presence_room_query_drops_expired_members(redis):
    room = room_key("hall")
    now = int(time.time() * 1000)
    redis.script("presence_room", [room], [now - 5, "gone", now + 30000, "old", now + 60000, "new"])
    out = redis.script("presence_room_query", [room], [now, 10]).split("\n")
    assert out == ["2", "new", "old"]              # latest first, the expired member removed
    assert redis.cli("ZSCORE", room, "gone") == ""
    assert redis.script("presence_room_query", [room], [now, 1]).split("\n") == ["2", "new"]
    assert redis.script("presence_room_query", [room], [now, 0]) == "2"


def test_presence_room_takes_any_number_of_members_in_one_call(redis):
    # A backlog flushed after leveed was away puts thousands of one room's
    # users in one call: unpacking 2 arguments per member at once fails past
    # about 4,000 members (Lua's C stack), and the batch failed for good.
    room = room_key("big")
    now = int(time.time() * 1000)
    args = []
    for i in range(9000):
        args += [now + 60000 + i, f"u{i}"]
    assert redis.script("presence_room", [room], args) == "9000"
    assert redis.cli("ZCARD", room) == "9000"
    assert redis.cli("ZSCORE", room, "u8999") == str(now + 60000 + 8999)
    assert 60000 + 8999 - 1000 < int(redis.cli("PTTL", room)) <= 60000 + 8999 + 1000
    assert redis.script("presence_room_query", [room], [now, 1]).split("\n") == ["9000", "u8999"]


# ---------------------------------------------------------------- limit_lease

def bucket(name: str, period_us: int, capacity: int) -> str:
    """The key leveed gives the script (redis::keys::limit_bucket)."""
    return limit_key("z", name, period_us, capacity)


def test_limit_lease_grants_at_most_the_burst_at_once(redis):
    period_us = 100_000          # 10 r/s
    capacity = 5                 # burst 4 + 1
    key = bucket("k1", period_us, capacity)
    assert redis.script("limit_lease", [key], [period_us, capacity, 100]) == "5"
    assert redis.script("limit_lease", [key], [period_us, capacity, 100]) == "0"


def test_limit_lease_refills_at_the_rate(redis):
    period_us = 100_000          # 10 r/s
    key = bucket("k2", period_us, 10)
    assert redis.script("limit_lease", [key], [period_us, 10, 100]) == "10"
    time.sleep(0.35)
    granted = int(redis.script("limit_lease", [key], [period_us, 10, 100]))
    assert 3 <= granted <= 4     # 0.35 s at 10 r/s, never more than the elapsed time allows


def test_limit_lease_gives_each_token_once(redis):
    key = bucket("k3", 1_000_000, 30)
    # three instances asking in turn share one bucket of 30
    grants = [int(redis.script("limit_lease", [key], [1_000_000, 30, 12])) for _ in range(3)]
    assert grants[:2] == [12, 12] and grants[2] in (6, 7) and sum(grants) <= 31


def test_limit_lease_with_no_want_takes_nothing(redis):
    key = bucket("k4", 1000, 10)
    assert redis.script("limit_lease", [key], [1000, 10, 0]) == "0"
    assert redis.cli("EXISTS", key) == "0"


def test_two_rates_of_one_key_never_share_a_bucket(redis):
    # A rolling reload from 1 r/m to 10 r/s: instances of both rates lease the
    # same zone and key at once. Each rate has its own bucket: the old one,
    # emptied, does not starve the new rate, and the new one's TAT (written
    # with a 100 ms period) is never read with the old 60 s period.
    old, new = bucket("k5", 60_000_000, 5), bucket("k5", 100_000, 5)
    assert redis.script("limit_lease", [old], [60_000_000, 5, 100]) == "5"
    assert redis.script("limit_lease", [old], [60_000_000, 5, 100]) == "0"
    assert redis.script("limit_lease", [new], [100_000, 5, 100]) == "5"
    tat_old, tat_new = int(redis.cli("GET", old)), int(redis.cli("GET", new))
    now_us = int(redis.cli("TIME").split()[0]) * 1_000_000
    assert tat_old - now_us > 250_000_000    # 5 periods of 60 s ahead
    assert tat_new - now_us < 2_000_000      # 5 periods of 100 ms ahead


def test_a_lease_sent_again_with_its_id_spends_once(redis):
    # leveed sends a lease again when the connection to Redis was lost after
    # sending it: the first may have run. With the same id the script answers
    # the first grant; without it the bucket was charged twice and one grant lost.
    key = bucket("k6", 1_000_000, 30)
    leases = key + ":leases"
    assert redis.script("limit_lease", [key, leases], [1_000_000, 30, 12, "leveed-a", 1]) == "12"
    tat = redis.cli("GET", key)
    assert redis.script("limit_lease", [key, leases], [1_000_000, 30, 12, "leveed-a", 1]) == "12"
    assert redis.cli("GET", key) == tat, "the retry spent again"
    # a new lease of the same leveed spends, and so does another leveed's lease
    # with the same number
    assert redis.script("limit_lease", [key, leases], [1_000_000, 30, 12, "leveed-a", 2]) == "12"
    assert int(redis.script("limit_lease", [key, leases], [1_000_000, 30, 12, "leveed-b", 2])) in (6, 7)
    assert redis.cli("HGET", leases, "leveed-a") == "2:12"
    # the ledger outlives leveed's retries (15 s), not much more
    assert 25_000 < int(redis.cli("PTTL", leases)) <= 30_000
