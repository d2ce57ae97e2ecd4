// A blocking client of leveed's socket that sends and receives frames the
// way an nginx worker does. Shared by leveectl (operators) and the load
// generators under tests/bench/, so both speak the protocol through one code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "frame_codec.hpp"

namespace levee::ctl {

class Client {
  public:
    Client() = default;
    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;
    ~Client();

    // Connects to the Unix socket at `path`; a receive gives up after 30 s.
    bool connect(const std::string &path);
    bool send(const Levee__Frame &frame);
    // The next frame from leveed, or null (see error()).
    FramePtr receive();
    const std::string &error() const { return error_; }

  private:
    int fd_ = -1;
    std::vector<std::uint8_t> in_;
    std::string error_;
};

// Sends a Hello as `program` and waits for the reply. Prints the reply unless
// `quiet` and accepted; errors go to stderr prefixed by `program`.
// Returns 0 accepted, 1 refused, 3 no reply (leveectl's exit codes).
int hello(Client &client, std::uint32_t version, const char *program, bool quiet);

} // namespace levee::ctl
