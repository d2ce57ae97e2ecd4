#include "resp_command.hpp"

#include <charconv>

namespace levee::redis {
namespace {

std::size_t digits(std::size_t n) {
    std::size_t d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

void append_header(std::string &out, char type, std::size_t n) {
    char buf[24];
    buf[0] = type;
    char *end = std::to_chars(buf + 1, buf + sizeof(buf) - 2, n).ptr;
    *end++ = '\r';
    *end++ = '\n';
    out.append(buf, static_cast<std::size_t>(end - buf));
}

} // namespace

std::string resp_command(const std::vector<std::string> &argv) {
    std::size_t size = 3 + digits(argv.size());
    for (const std::string &a : argv) {
        size += 1 + digits(a.size()) + 2 + a.size() + 2;
    }
    std::string out;
    out.reserve(size);
    append_header(out, '*', argv.size());
    for (const std::string &a : argv) {
        append_header(out, '$', a.size());
        out.append(a);
        out.append("\r\n", 2);
    }
    return out;
}

} // namespace levee::redis
