#!/usr/bin/env python3
"""Validates docker/compose.yaml with a real compose client (`config`), then
checks what the client cannot know: every service has a health check, the
Redis Cluster init waits for every node, MongoDB's init shards Levee's
collections on the key leveed writes (read from leveed's source), and the
socket shared between the containers is not world-writable.

usage: check_compose.py SOURCE_DIR
"""
import re
import shutil
import subprocess
import sys

import yaml


def compose_config(compose_file):
    for client in (["docker-compose"], ["podman-compose"]):
        if shutil.which(client[0]):
            run = subprocess.run(client + ["-f", compose_file, "config"], capture_output=True, text=True)
            if run.returncode != 0:
                sys.exit(f"{client[0]} -f {compose_file} config failed:\n{run.stdout}{run.stderr}")
            print(f"{client[0]} config: ok")
            return yaml.safe_load(run.stdout)
    sys.exit("no compose client: apt-get install docker-compose (scripts/install-deps.sh --packaging)")


def shard_key_leveed_writes(src):
    """(collection, field, kind) that leveed shards presence on behind a mongos."""
    header = open(f"{src}/sidecar/mongo/presence_writer.hpp").read()
    collection = re.search(r'kPresenceCollection = "(\w+)"', header).group(1)
    code = open(f"{src}/sidecar/mongo/presence_writer.cpp").read()
    m = re.search(r'"shardCollection".*?"key", "\{", "(\w+)", BCON_UTF8\("(\w+)"\)', code, re.S)
    if not m:
        sys.exit("cannot find the shardCollection key in sidecar/mongo/presence_writer.cpp")
    return collection, m.group(1), m.group(2)


def main():
    src = sys.argv[1]
    failures = []
    config = compose_config(f"{src}/docker/compose.yaml")
    services = config["services"]

    for name, service in sorted(services.items()):
        if "healthcheck" not in service or service["healthcheck"].get("disable"):
            failures.append(f"service {name} has no health check")

    redis_nodes = sorted(n for n in services if re.fullmatch(r"redis-\d+", n))
    init = services["redis-init"]
    waits_for = init.get("depends_on", {})
    for node in redis_nodes:
        if waits_for.get(node, {}).get("condition") != "service_healthy":
            failures.append(f"redis-init does not wait for {node} to be healthy")
    if "ping" not in " ".join(init["command"]):
        failures.append("redis-init does not ping the nodes itself (clients that ignore depends_on conditions)")

    collection, field, kind = shard_key_leveed_writes(src)
    mongo_init = " ".join(services["mongo-init"]["command"])
    sharded = dict(
        (coll, (f, k)) for coll, f, k in re.findall(r'shardCollection\("levee\.(\w+)", \{(\w+): "(\w+)"\}\)', mongo_init)
    )
    if sharded.get(collection) != (field, kind):
        failures.append(
            f"mongo-init shards levee.{collection} on {sharded.get(collection)}, "
            f"leveed writes it by {{{field}: {kind}}} (sidecar/mongo/presence_writer.cpp)"
        )

    settings = dict(
        line.split(None, 1)
        for line in open(f"{src}/docker/leveed.conf").read().splitlines()
        if line.strip() and not line.startswith("#")
    )
    mode = int(settings.get("socket_mode", "0660").strip(), 8)
    if mode & 0o007:
        failures.append(f"docker/leveed.conf: socket_mode {oct(mode)} gives other users access; use 0660 and socket_group")
    if settings.get("socket_group", "").strip() != "www-data":
        failures.append("docker/leveed.conf: socket_group is not www-data (the group of nginx's workers)")

    for f in failures:
        print("FAIL:", f)
    if failures:
        sys.exit(1)
    print(f"compose: {len(services)} services with health checks; levee.{collection} sharded on {{{field}: {kind}}}")


if __name__ == "__main__":
    main()
