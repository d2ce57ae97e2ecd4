#include "log.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <mutex>

#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

namespace levee::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::mutex g_file_mutex; // guards g_fd swaps, not writes
int g_fd = STDERR_FILENO;
std::string g_path;

bool needs_quotes(std::string_view v) {
    if (v.empty()) {
        return true;
    }
    for (char c : v) {
        if (c == ' ' || c == '"' || c == '=' || c == '\n' || c == '\t') {
            return true;
        }
    }
    return false;
}

void append_value(std::string &line, std::string_view v) {
    if (!needs_quotes(v)) {
        line.append(v);
        return;
    }
    line.push_back('"');
    for (char c : v) {
        if (c == '"' || c == '\\') {
            line.push_back('\\');
            line.push_back(c);
        } else if (c == '\n') {
            line.append("\\n");
        } else {
            line.push_back(c);
        }
    }
    line.push_back('"');
}

} // namespace

bool parse_level(std::string_view name, Level &out) {
    if (name == "debug") {
        out = Level::kDebug;
        return true;
    }
    if (name == "info") {
        out = Level::kInfo;
        return true;
    }
    if (name == "warn") {
        out = Level::kWarn;
        return true;
    }
    if (name == "error") {
        out = Level::kError;
        return true;
    }
    return false;
}

const char *level_name(Level level) {
    switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
    }
    return "info";
}

void set_level(Level level) {
    g_level.store(static_cast<int>(level));
}

bool enabled(Level level) {
    return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

bool open_file(const std::string &path, std::string &error) {
    std::lock_guard<std::mutex> lock(g_file_mutex);
    g_path = path;
    if (path.empty()) {
        return true;
    }
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        error = "cannot open log file " + path + ": " + std::strerror(errno);
        return false;
    }
    if (g_fd != STDERR_FILENO) {
        ::close(g_fd);
    }
    g_fd = fd;
    return true;
}

bool reopen(std::string &error) {
    std::string path;
    {
        std::lock_guard<std::mutex> lock(g_file_mutex);
        path = g_path;
    }
    return open_file(path, error);
}

std::string format_line(Level level, std::string_view event, std::initializer_list<Field> fields) {
    return format_line(level, event, fields.begin(), fields.size());
}

std::string format_line(Level level, std::string_view event, const Field *fields, std::size_t n) {
    struct timeval tv;
    gettimeofday(&tv, nullptr);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[64];
    std::snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(tv.tv_usec / 1000));
    std::string line;
    line.reserve(128);
    line.append(ts);
    line.push_back(' ');
    line.append(level_name(level));
    line.push_back(' ');
    line.append(event);
    for (const Field *f = fields; f != fields + n; f++) {
        line.push_back(' ');
        line.append(f->key);
        line.push_back('=');
        append_value(line, f->value);
    }
    return line;
}

void write(Level level, std::string_view event, std::initializer_list<Field> fields) {
    write(level, event, fields.begin(), fields.size());
}

void write(Level level, std::string_view event, const Field *fields, std::size_t n) {
    if (!enabled(level)) {
        return;
    }
    std::string line = format_line(level, event, fields, n);
    line.push_back('\n');
    std::lock_guard<std::mutex> lock(g_file_mutex);
    // O_APPEND plus one write(2) per line keeps lines whole.
    ssize_t ignored = ::write(g_fd, line.data(), line.size());
    (void)ignored;
}

} // namespace levee::log
