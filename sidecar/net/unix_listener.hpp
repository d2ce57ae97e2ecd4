// A listening Unix domain socket with the mode and group operators asked for.
// The socket file is removed when the listener is destroyed.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <sys/socket.h>

#include "event_ptr.hpp"

struct event_base;
struct evconnlistener;

namespace levee {

class UnixListener {
  public:
    using AcceptFn = std::function<void(int fd)>;
    // accept() failed for want of a resource (EMFILE, ENFILE, ...): the
    // connection stays in the backlog, so the socket stays readable and
    // retrying at once would spin. Accepting pauses this long instead.
    using ErrorFn = std::function<void(int error)>;
    static constexpr int kAcceptPauseMs = 100;

    // Refuses to replace a socket another process still accepts on.
    static std::unique_ptr<UnixListener> open(event_base *base, const std::string &path, unsigned mode,
                                              const std::string &group, AcceptFn on_accept, ErrorFn on_error,
                                              std::string &error);
    ~UnixListener();
    UnixListener(const UnixListener &) = delete;
    UnixListener &operator=(const UnixListener &) = delete;

    // Stops accepting (drain) without removing the socket file yet.
    void disable();

  private:
    UnixListener(std::string path, AcceptFn on_accept, ErrorFn on_error)
        : path_(std::move(path)), on_accept_(std::move(on_accept)), on_error_(std::move(on_error)) {}
    static void accept_cb(evconnlistener *, int fd, struct sockaddr *, int, void *arg);
    static void error_cb(evconnlistener *, void *arg);
    static void resume_cb(int, short, void *arg);

    std::string path_;
    AcceptFn on_accept_;
    ErrorFn on_error_;
    EventPtr resume_;
    bool disabled_ = false; // by disable(): a pause must not end it
    std::unique_ptr<evconnlistener, void (*)(evconnlistener *)> listener_{nullptr, nullptr};
};

} // namespace levee
