#include "metrics.hpp"

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
        if (f.series.empty()) {
            out << name << " 0\n";
        }
        for (const auto &[labels, v] : f.series) {
            out << name << labels << ' ';
            if (v == std::floor(v) && std::fabs(v) < 1e15) {
                out << static_cast<long long>(v);
            } else {
                out << v;
            }
            out << '\n';
        }
    }
    return out.str();
}

} // namespace levee
