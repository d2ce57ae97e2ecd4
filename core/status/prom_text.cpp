#include "core/status/prom_text.hpp"

#include <cmath>
#include <cstdio>
#include <vector>

namespace levee::status {

namespace {

void append_double(std::string &out, double v) {
    if (std::isinf(v)) {
        out += v > 0 ? "+Inf" : "-Inf";
        return;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    out += buf;
}

} // namespace

void PromText::family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    // HELP text escapes only backslash and newline.
    for (char c : help) {
        if (c == '\\') {
            out_ += "\\\\";
        } else if (c == '\n') {
            out_ += "\\n";
        } else {
            out_ += c;
        }
    }
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
}

void PromText::labels(const Label *labels, std::size_t n) {
    if (n == 0) {
        return;
    }
    out_ += '{';
    for (std::size_t i = 0; i < n; i++) {
        if (i) {
            out_ += ',';
        }
        out_ += labels[i].first;
        out_ += "=\"";
        for (char c : labels[i].second) {
            if (c == '\\' || c == '"') {
                out_ += '\\';
                out_ += c;
            } else if (c == '\n') {
                out_ += "\\n";
            } else {
                out_ += c;
            }
        }
        out_ += '"';
    }
    out_ += '}';
}

void PromText::sample(std::string_view name, const Label *l, std::size_t n, uint64_t value) {
    out_ += name;
    labels(l, n);
    out_ += ' ';
    out_ += std::to_string(value);
    out_ += '\n';
}

void PromText::sample(std::string_view name, const Label *l, std::size_t n, double value) {
    out_ += name;
    labels(l, n);
    out_ += ' ';
    append_double(out_, value);
    out_ += '\n';
}

void write_histogram(PromText &out, std::string_view name, std::initializer_list<Label> labels,
                     const HistogramView &h) {
    const std::string bucket = std::string(name) + "_bucket";
    std::vector<Label> with_le(labels);
    with_le.emplace_back("le", "");
    uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= h.buckets; i++) {
        std::string le = "+Inf";
        if (i < h.buckets) {
            le.clear();
            append_double(le, h.upper_bounds[i]);
            cumulative += h.counts[i];
        }
        with_le.back().second = le;
        out.sample(bucket, with_le.data(), with_le.size(), i < h.buckets ? cumulative : h.count);
    }
    out.sample(std::string(name) + "_sum", labels, h.sum);
    out.sample(std::string(name) + "_count", labels, h.count);
}

} // namespace levee::status
