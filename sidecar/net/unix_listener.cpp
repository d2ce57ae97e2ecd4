#include "unix_listener.hpp"

#include <cerrno>
#include <cstring>

#include <event2/listener.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace levee {
namespace {

bool someone_listens(const sockaddr_un &addr) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    const bool ok = ::connect(fd, reinterpret_cast<const sockaddr *>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    return ok;
}

// A plain `leveed` binds /run/levee/leveed.sock where no systemd
// RuntimeDirectory= made /run/levee: make that one level, readable by nginx.
bool ensure_parent_dir(const std::string &path, std::string &error) {
    const auto slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0) {
        return true;
    }
    const std::string dir = path.substr(0, slash);
    struct stat st;
    if (::stat(dir.c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            return true;
        }
        error = "the socket's directory " + dir + " is not a directory";
        return false;
    }
    if (::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) {
        return true;
    }
    error = "cannot create the socket's directory " + dir + ": " + std::strerror(errno) +
            " (create it, e.g. with systemd's RuntimeDirectory=levee, or give --socket PATH)";
    return false;
}

} // namespace

std::unique_ptr<UnixListener> UnixListener::open(event_base *base, const std::string &path, unsigned mode,
                                                 const std::string &group, AcceptFn on_accept, ErrorFn on_error,
                                                 std::string &error) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path)) {
        error = "socket path too long: " + path;
        return nullptr;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);

    if (!ensure_parent_dir(path, error)) {
        return nullptr;
    }
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            error = path + " exists and is not a socket";
            return nullptr;
        }
        if (someone_listens(addr)) {
            error = "another process is listening on " + path;
            return nullptr;
        }
        ::unlink(path.c_str()); // left behind by a process that died
    }

    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error = std::string("socket(): ") + std::strerror(errno);
        return nullptr;
    }
    // The mode must hold from the first moment the path exists.
    const mode_t old_umask = ::umask(~mode & 0777);
    const int rc = ::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr));
    ::umask(old_umask);
    if (rc != 0) {
        error = "bind(" + path + "): " + std::strerror(errno);
        ::close(fd);
        return nullptr;
    }
    if (::chmod(path.c_str(), mode) != 0) {
        error = "chmod(" + path + "): " + std::strerror(errno);
        ::close(fd);
        ::unlink(path.c_str());
        return nullptr;
    }
    if (!group.empty()) {
        struct group *gr = ::getgrnam(group.c_str());
        if (gr == nullptr || ::chown(path.c_str(), static_cast<uid_t>(-1), gr->gr_gid) != 0) {
            error = "cannot give " + path + " to group " + group +
                    (gr == nullptr ? ": no such group" : std::string(": ") + std::strerror(errno));
            ::close(fd);
            ::unlink(path.c_str());
            return nullptr;
        }
    }

    std::unique_ptr<UnixListener> self(new UnixListener(path, std::move(on_accept), std::move(on_error)));
    self->resume_.reset(evtimer_new(base, resume_cb, self.get()));
    evconnlistener *l =
        evconnlistener_new(base, accept_cb, self.get(), LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 1024, fd);
    if (l == nullptr) {
        error = "evconnlistener_new failed for " + path;
        ::close(fd);
        ::unlink(path.c_str());
        return nullptr;
    }
    self->listener_ = {l, evconnlistener_free};
    evconnlistener_set_error_cb(l, error_cb);
    return self;
}

UnixListener::~UnixListener() {
    resume_.reset();
    listener_.reset();
    ::unlink(path_.c_str());
}

void UnixListener::disable() {
    disabled_ = true;
    if (resume_) {
        evtimer_del(resume_.get());
    }
    if (listener_) {
        evconnlistener_disable(listener_.get());
    }
}

void UnixListener::error_cb(evconnlistener *l, void *arg) {
    auto *self = static_cast<UnixListener *>(arg);
    const int err = EVUTIL_SOCKET_ERROR();
    const timeval pause{0, kAcceptPauseMs * 1000};
    if (self->resume_ && evtimer_add(self->resume_.get(), &pause) == 0) {
        evconnlistener_disable(l);
    }
    if (self->on_error_) {
        self->on_error_(err);
    }
}

void UnixListener::resume_cb(int, short, void *arg) {
    auto *self = static_cast<UnixListener *>(arg);
    if (!self->disabled_ && self->listener_) {
        evconnlistener_enable(self->listener_.get());
    }
}

void UnixListener::accept_cb(evconnlistener *, int fd, struct sockaddr *, int, void *arg) {
    static_cast<UnixListener *>(arg)->on_accept_(fd);
}

} // namespace levee
