// Runs an embedded Lua script (lua/*.lua) on the cluster with EVALSHA. The
// script is registered with the client, which loads it on a node with SCRIPT
// LOAD whenever that node answers NOSCRIPT (new node, failover, SCRIPT FLUSH)
// and re-sends the command: callers just call run().
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cluster_client.hpp"

namespace levee::redis {

class Script {
  public:
    // `name` is a file of lua/ without ".lua"; `sha1` is computed here, so no
    // round trip is needed before the first EVALSHA.
    Script(ClusterClient &client, std::string_view name);

    bool valid() const { return !source_.empty(); }
    const std::string &sha1() const { return sha1_; }

    // EVALSHA with KEYS = keys (which must share a slot; routed by keys[0])
    // and ARGV = args. Same contract as ClusterClient::command.
    bool run(std::vector<std::string> keys, std::vector<std::string> args, ClusterClient::Callback cb);

  private:
    ClusterClient &client_;
    std::string source_;
    std::string sha1_;
};

// SHA-1 in lowercase hex, as Redis names scripts.
std::string sha1_hex(std::string_view data);

} // namespace levee::redis
