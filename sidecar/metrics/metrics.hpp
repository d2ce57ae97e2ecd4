// Counters and gauges rendered in Prometheus text format. Thread-safe: the
// MongoDB writer thread updates them too.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace levee {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
  public:
    // Declares a metric; its HELP line and type come out even at zero.
    void describe(const std::string &name, const std::string &type, const std::string &help);
    void inc(const std::string &name, const Labels &labels = {}, double by = 1);
    void set(const std::string &name, const Labels &labels, double value);
    double value(const std::string &name, const Labels &labels = {}) const;
    std::string render() const;

  private:
    struct Family {
        std::string type;
        std::string help;
        std::map<std::string, double> series; // rendered label set -> value
    };
    static std::string render_labels(const Labels &labels);

    mutable std::mutex mutex_;
    std::map<std::string, Family> families_;
};

} // namespace levee
