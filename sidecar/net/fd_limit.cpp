#include "fd_limit.hpp"

#include <sys/resource.h>

namespace levee {

FdLimit ensure_fd_limit(std::uint64_t needed) {
    FdLimit out;
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return out;
    }
    out.soft_before = out.soft = rl.rlim_cur;
    out.hard = rl.rlim_max;
    if (rl.rlim_cur < needed && rl.rlim_cur < rl.rlim_max) {
        rlimit raised = rl;
        raised.rlim_cur = rl.rlim_max;
        // An infinite hard limit is above the kernel's nr_open: ask for what is needed.
        if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) {
            raised.rlim_cur = needed < rl.rlim_max ? needed : rl.rlim_max;
            ::setrlimit(RLIMIT_NOFILE, &raised);
        }
        if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
            out.soft = rl.rlim_cur;
        }
    }
    out.enough = out.soft >= needed;
    return out;
}

} // namespace levee
