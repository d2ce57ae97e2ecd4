#include <gtest/gtest.h>

#include "core/status/prom_text.hpp"

namespace {

using levee::status::PromText;

TEST(PromText, FamilyThenSamples) {
    PromText t;
    t.family("levee_limit_requests_total", "counter", "Requests decided, by zone and outcome.");
    t.sample("levee_limit_requests_total", {{"zone", "api"}, {"outcome", "passed"}}, uint64_t{12});
    t.sample("levee_limit_shm_used_bytes", {}, uint64_t{4096});
    EXPECT_EQ(t.text(), "# HELP levee_limit_requests_total Requests decided, by zone and outcome.\n"
                        "# TYPE levee_limit_requests_total counter\n"
                        "levee_limit_requests_total{zone=\"api\",outcome=\"passed\"} 12\n"
                        "levee_limit_shm_used_bytes 4096\n");
}

TEST(PromText, EscapesLabelValuesAndHelp) {
    PromText t;
    t.family("x", "gauge", "a \\ b\nc");
    t.sample("x", {{"server", "a\"b\\c\nd"}}, uint64_t{1});
    EXPECT_EQ(t.text(), "# HELP x a \\\\ b\\nc\n# TYPE x gauge\nx{server=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(PromText, DoublesKeepTheirPrecision) {
    PromText t;
    t.sample("x", {}, 0.1);
    t.sample("y", {}, 1e300 * 1e300);
    EXPECT_EQ(t.text(), "x 0.10000000000000001\ny +Inf\n");
}

TEST(PromText, HistogramIsCumulativeWithInfSumAndCount) {
    PromText t;
    const uint64_t counts[] = {1, 0, 2};
    const double bounds[] = {1, 10, 100};
    levee::status::write_histogram(t, "b", {{"zone", "z"}}, {counts, bounds, 3, 4, 250});
    EXPECT_EQ(t.text(), "b_bucket{zone=\"z\",le=\"1\"} 1\n"
                        "b_bucket{zone=\"z\",le=\"10\"} 1\n"
                        "b_bucket{zone=\"z\",le=\"100\"} 3\n"
                        "b_bucket{zone=\"z\",le=\"+Inf\"} 4\n"
                        "b_sum{zone=\"z\"} 250\n"
                        "b_count{zone=\"z\"} 4\n");
}

} // namespace
