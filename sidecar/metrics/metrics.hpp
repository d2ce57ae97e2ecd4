// Counters, gauges and histograms rendered in Prometheus text format.
// Thread-safe: the MongoDB writer thread updates them too.
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
    // Sets every series of a family at once: a series not in `series` is
    // dropped, so a family that follows changing things (Redis nodes) does
    // not keep one series per thing ever seen. A scrape sees the old set or
    // the new one, never a mix.
    void replace(const std::string &name, const std::vector<std::pair<Labels, double>> &series);
    // A histogram's buckets are fixed when it is declared: every series of a
    // family must share them for Prometheus to aggregate across labels.
    void describe_histogram(const std::string &name, const std::string &help, std::vector<double> upper_bounds);
    void observe(const std::string &name, const Labels &labels, double value);
    // The observations of one series so far (tests and leveectl).
    std::uint64_t observations(const std::string &name, const Labels &labels = {}) const;
    double value(const std::string &name, const Labels &labels = {}) const;
    std::string render() const;

  private:
    struct Histogram {
        std::vector<std::uint64_t> counts; // per upper bound, not cumulative
        std::uint64_t count = 0;
        double sum = 0;
    };
    struct Family {
        std::string type;
        std::string help;
        std::map<std::string, double> series; // rendered label set -> value
        std::vector<double> upper_bounds;     // histograms only
        std::map<std::string, Histogram> histograms;
    };
    static std::string render_labels(const Labels &labels);
    static void render_histogram(std::ostream &out, const std::string &name, const Family &f);

    mutable std::mutex mutex_;
    std::map<std::string, Family> families_;
};

} // namespace levee
