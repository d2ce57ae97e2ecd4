// leveed's log: one line per event, "ts level event key=value ...", written
// with a single write(2) so lines from different threads never interleave.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace levee::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

bool parse_level(std::string_view name, Level &out);
const char *level_name(Level level);

// A key=value pair; values that contain spaces, quotes or '=' are quoted.
struct Field {
    Field(std::string_view k, std::string_view v) : key(k), value(v) {}
    Field(std::string_view k, const char *v) : key(k), value(v ? v : "") {}
    Field(std::string_view k, const std::string &v) : key(k), value(v) {}
    Field(std::string_view k, long long v) : key(k), value(std::to_string(v)) {}
    Field(std::string_view k, unsigned long long v) : key(k), value(std::to_string(v)) {}
    Field(std::string_view k, long v) : key(k), value(std::to_string(v)) {}
    Field(std::string_view k, unsigned long v) : key(k), value(std::to_string(v)) {}
    Field(std::string_view k, int v) : key(k), value(std::to_string(v)) {}
    Field(std::string_view k, unsigned v) : key(k), value(std::to_string(v)) {}
    Field(std::string_view k, double v) : key(k), value(std::to_string(v)) {}
    std::string_view key;
    std::string value;
};

// Logs to stderr until open_file() succeeds. `path` empty means stderr.
bool open_file(const std::string &path, std::string &error);
// Reopens the file given to open_file (SIGHUP, after logrotate moved it).
bool reopen(std::string &error);
void set_level(Level level);
bool enabled(Level level);

void write(Level level, std::string_view event, std::initializer_list<Field> fields = {});
// The same with fields put together at run time (LogThrottle adds one).
void write(Level level, std::string_view event, const Field *fields, std::size_t n);

// Formats one line without the trailing newline; exposed for tests.
std::string format_line(Level level, std::string_view event, std::initializer_list<Field> fields);
std::string format_line(Level level, std::string_view event, const Field *fields, std::size_t n);

inline void debug(std::string_view e, std::initializer_list<Field> f = {}) {
    write(Level::kDebug, e, f);
}
inline void info(std::string_view e, std::initializer_list<Field> f = {}) {
    write(Level::kInfo, e, f);
}
inline void warn(std::string_view e, std::initializer_list<Field> f = {}) {
    write(Level::kWarn, e, f);
}
inline void error(std::string_view e, std::initializer_list<Field> f = {}) {
    write(Level::kError, e, f);
}

} // namespace levee::log
