// The file descriptors leveed may open (RLIMIT_NOFILE): every connection
// from nginx takes one, and so do Redis nodes, the spool, MongoDB's pool,
// the metrics listener. Out of them, accept() fails and nginx is locked out.
#pragma once

#include <cstdint>

namespace levee {

// Descriptors leveed opens besides connections from nginx: Redis Cluster
// nodes, MongoDB's pool, the spool, the listening sockets, the log.
constexpr std::uint64_t kFdReserve = 128;

struct FdLimit {
    std::uint64_t soft_before = 0;
    std::uint64_t soft = 0; // after
    std::uint64_t hard = 0;
    bool enough = false; // soft >= needed
};

// Raises the soft limit to the hard one when it is below `needed`, as far
// as an unprivileged process may.
FdLimit ensure_fd_limit(std::uint64_t needed);

} // namespace levee
