// Runs an embedded Lua script (lua/*.lua) on the cluster with EVALSHA. The
// script is registered with the client, which loads it on a node with SCRIPT
// LOAD whenever that node answers NOSCRIPT (new node, failover, SCRIPT FLUSH)
// and re-sends the command: callers just call run().
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cluster_client.hpp"
#include "lua_scripts.hpp"

namespace levee::redis {

class Script {
  public:
    // `script` is one of lua/, by its generated accessor (lua::limit_lease());
    // the SHA-1 is computed here, so no round trip precedes the first EVALSHA.
    Script(ClusterClient &client, const lua::Script &script);
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
