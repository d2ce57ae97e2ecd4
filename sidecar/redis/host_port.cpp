#include "host_port.hpp"

namespace levee::redis {
namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

} // namespace

std::string HostPort::str() const {
    if (host.find(':') != std::string::npos) {
        return "[" + host + "]:" + std::to_string(port);
    }
    return host + ":" + std::to_string(port);
}

bool parse_host_port(std::string_view text, HostPort &out, std::string &error) {
    text = trim(text);
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
        error = "missing port in \"" + std::string(text) + "\"";
        return false;
    }
    std::string_view host = text.substr(0, colon);
    const std::string_view port = text.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    } else if (host.find(':') != std::string_view::npos) {
        error = "IPv6 address must be bracketed in \"" + std::string(text) + "\"";
        return false;
    }
    if (host.empty()) {
        error = "empty host in \"" + std::string(text) + "\"";
        return false;
    }
    if (port.empty() || port.size() > 5) {
        error = "invalid port in \"" + std::string(text) + "\"";
        return false;
    }
    int value = 0;
    for (char c : port) {
        if (c < '0' || c > '9') {
            error = "invalid port in \"" + std::string(text) + "\"";
            return false;
        }
        value = value * 10 + (c - '0');
    }
    if (value < 1 || value > 65535) {
        error = "port out of range in \"" + std::string(text) + "\"";
        return false;
    }
    out.host.assign(host);
    out.port = value;
    return true;
}

bool parse_host_ports(std::string_view csv, std::vector<HostPort> &out, std::string &error) {
    std::vector<HostPort> result;
    while (true) {
        const auto comma = csv.find(',');
        const std::string_view item = trim(csv.substr(0, comma));
        if (item.empty()) {
            error = "empty entry in host list";
            return false;
        }
        HostPort hp;
        if (!parse_host_port(item, hp, error)) {
            return false;
        }
        result.push_back(std::move(hp));
        if (comma == std::string_view::npos) {
            break;
        }
        csv.remove_prefix(comma + 1);
    }
    out = std::move(result);
    return true;
}

} // namespace levee::redis
