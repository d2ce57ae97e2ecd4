#include "metrics.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace levee {

std::string Metrics::render_labels(const Labels &labels) {
    if (labels.empty()) {
        return "";
    }
    std::string out = "{";
    for (std::size_t i = 0; i < labels.size(); i++) {
        if (i) {
            out.push_back(',');
        }
        out += labels[i].first;
        out += "=\"";
        for (char c : labels[i].second) {
            if (c == '"' || c == '\\') {
                out.push_back('\\');
                out.push_back(c);
            } else if (c == '\n') {
                out += "\\n";
            } else {
                out.push_back(c);
            }
        }
        out.push_back('"');
    }
    out.push_back('}');
    return out;
}

void Metrics::describe(const std::string &name, const std::string &type, const std::string &help) {
    std::lock_guard<std::mutex> lock(mutex_);
    Family &f = families_[name];
    f.type = type;
    f.help = help;
}

void Metrics::inc(const std::string &name, const Labels &labels, double by) {
    const std::string key = render_labels(labels);
    std::lock_guard<std::mutex> lock(mutex_);
    Family &f = families_[name];
    if (f.type.empty()) {
        f.type = "counter";
    }
    f.series[key] += by;
}

void Metrics::set(const std::string &name, const Labels &labels, double value) {
    const std::string key = render_labels(labels);
    std::lock_guard<std::mutex> lock(mutex_);
    Family &f = families_[name];
    if (f.type.empty()) {
        f.type = "gauge";
    }
    f.series[key] = value;
}

void Metrics::replace(const std::string &name, const std::vector<std::pair<Labels, double>> &series) {
    std::map<std::string, double> next;
    for (const auto &[labels, value] : series) {
        next[render_labels(labels)] = value;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    Family &f = families_[name];
    if (f.type.empty()) {
        f.type = "gauge";
    }
    f.series = std::move(next);
}

void Metrics::describe_histogram(const std::string &name, const std::string &help, std::vector<double> upper_bounds) {
    std::sort(upper_bounds.begin(), upper_bounds.end());
    std::lock_guard<std::mutex> lock(mutex_);
    Family &f = families_[name];
    f.type = "histogram";
    f.help = help;
    f.upper_bounds = std::move(upper_bounds);
}

void Metrics::observe(const std::string &name, const Labels &labels, double value) {
    const std::string key = render_labels(labels);
    std::lock_guard<std::mutex> lock(mutex_);
    const auto family = families_.find(name);
    if (family == families_.end() || family->second.type != "histogram") {
        return; // an undeclared histogram has no buckets to count in
    }
    Family &f = family->second;
    Histogram &h = f.histograms[key];
    h.counts.resize(f.upper_bounds.size());
    const auto bound = std::lower_bound(f.upper_bounds.begin(), f.upper_bounds.end(), value);
    if (bound != f.upper_bounds.end()) {
        h.counts[static_cast<std::size_t>(bound - f.upper_bounds.begin())]++;
    }
    h.count++;
    h.sum += value;
}

std::uint64_t Metrics::observations(const std::string &name, const Labels &labels) const {
    const std::string key = render_labels(labels);
    std::lock_guard<std::mutex> lock(mutex_);
    const auto f = families_.find(name);
    if (f == families_.end()) {
        return 0;
    }
    const auto h = f->second.histograms.find(key);
    return h == f->second.histograms.end() ? 0 : h->second.count;
}

namespace {

void render_number(std::ostream &out, double v) {
    if (std::isinf(v)) {
        out << (v > 0 ? "+Inf" : "-Inf");
    } else if (v == std::floor(v) && std::fabs(v) < 1e15) {
        out << static_cast<long long>(v);
    } else {
        out << v;
    }
}

// `{a="b"}` plus le="x" gives `{a="b",le="x"}`.
std::string with_le(const std::string &labels, const std::string &le) {
    const std::string pair = "le=\"" + le + "\"";
    if (labels.empty()) {
        return "{" + pair + "}";
    }
    return labels.substr(0, labels.size() - 1) + "," + pair + "}";
}

} // namespace

void Metrics::render_histogram(std::ostream &out, const std::string &name, const Family &f) {
    auto series = f.histograms;
    if (series.empty()) {
        series[""].counts.resize(f.upper_bounds.size()); // declared: all zero
    }
    for (const auto &[labels, h] : series) {
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < f.upper_bounds.size(); i++) {
            cumulative += h.counts[i];
            std::ostringstream le;
            render_number(le, f.upper_bounds[i]);
            out << name << "_bucket" << with_le(labels, le.str()) << ' ' << cumulative << '\n';
        }
        out << name << "_bucket" << with_le(labels, "+Inf") << ' ' << h.count << '\n';
        out << name << "_sum" << labels << ' ';
        render_number(out, h.sum);
        out << '\n' << name << "_count" << labels << ' ' << h.count << '\n';
    }
}

double Metrics::value(const std::string &name, const Labels &labels) const {
    const std::string key = render_labels(labels);
    std::lock_guard<std::mutex> lock(mutex_);
    const auto f = families_.find(name);
    if (f == families_.end()) {
        return 0;
    }
    const auto s = f->second.series.find(key);
    return s == f->second.series.end() ? 0 : s->second;
}

std::string Metrics::render() const {
    std::ostringstream out;
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto &[name, f] : families_) {
        if (!f.help.empty()) {
            out << "# HELP " << name << ' ' << f.help << '\n';
        }
        out << "# TYPE " << name << ' ' << f.type << '\n';
        if (f.type == "histogram") {
            render_histogram(out, name, f);
            continue;
        }
        if (f.series.empty()) {
            out << name << " 0\n";
        }
        for (const auto &[labels, v] : f.series) {
            out << name << labels << ' ';
            render_number(out, v);
            out << '\n';
        }
    }
    return out.str();
}

} // namespace levee
