// "host:port" endpoints, as given in configuration and in MOVED/ASK replies.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace levee::redis {

struct HostPort {
    std::string host;
    int port = 0;

    std::string str() const; // "host:port"; IPv6 hosts are bracketed
    bool operator==(const HostPort &o) const { return port == o.port && host == o.host; }
    bool operator!=(const HostPort &o) const { return !(*this == o); }
};

// One endpoint: "host:port" or "[v6addr]:port"; the port must be 1..65535.
bool parse_host_port(std::string_view text, HostPort &out, std::string &error);

// A comma-separated list, "h:p,h:p"; blanks around entries are ignored, an
// empty list is an error. `out` is replaced only on success.
bool parse_host_ports(std::string_view csv, std::vector<HostPort> &out, std::string &error);

} // namespace levee::redis
