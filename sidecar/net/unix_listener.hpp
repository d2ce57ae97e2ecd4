// A listening Unix domain socket with the mode and group operators asked for.
// The socket file is removed when the listener is destroyed.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <sys/socket.h>

struct event_base;
struct evconnlistener;

namespace levee {

class UnixListener {
  public:
    using AcceptFn = std::function<void(int fd)>;

    // Refuses to replace a socket another process still accepts on.
    static std::unique_ptr<UnixListener> open(event_base *base, const std::string &path, unsigned mode,
                                              const std::string &group, AcceptFn on_accept, std::string &error);
    ~UnixListener();
    UnixListener(const UnixListener &) = delete;
    UnixListener &operator=(const UnixListener &) = delete;

    // Stops accepting (drain) without removing the socket file yet.
    void disable();

  private:
    UnixListener(std::string path, AcceptFn on_accept) : path_(std::move(path)), on_accept_(std::move(on_accept)) {}
    static void accept_cb(evconnlistener *, int fd, struct sockaddr *, int, void *arg);

    std::string path_;
    AcceptFn on_accept_;
    std::unique_ptr<evconnlistener, void (*)(evconnlistener *)> listener_{nullptr, nullptr};
};

} // namespace levee
