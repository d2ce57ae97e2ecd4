// Writes the Prometheus text exposition format (version 0.0.4): the page
// levee_status serves. Kept free of nginx types so its escaping and layout
// are tested without a server.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace levee::status {

using Label = std::pair<std::string_view, std::string_view>;

class PromText {
  public:
    // Starts a metric family: its HELP and TYPE lines. Every sample of the
    // family must follow before the next family starts.
    void family(std::string_view name, std::string_view type, std::string_view help);
    void sample(std::string_view name, std::initializer_list<Label> labels, uint64_t value) {
        sample(name, labels.begin(), labels.size(), value);
    }
    void sample(std::string_view name, std::initializer_list<Label> labels, double value) {
        sample(name, labels.begin(), labels.size(), value);
    }
    void sample(std::string_view name, const Label *labels, std::size_t n, uint64_t value);
    void sample(std::string_view name, const Label *labels, std::size_t n, double value);

    const std::string &text() const { return out_; }

  private:
    void labels(const Label *labels, std::size_t n);

    std::string out_;
};

// Cumulative bucket counts of a histogram whose per-bucket counts are kept
// apart (a bucket's own count, as counters in shared memory are).
struct HistogramView {
    const uint64_t *counts; // one per upper bound, not cumulative
    const double *upper_bounds;
    std::size_t buckets;
    uint64_t count;
    double sum;
};

void write_histogram(PromText &out, std::string_view name, std::initializer_list<Label> labels, const HistogramView &h);

} // namespace levee::status
