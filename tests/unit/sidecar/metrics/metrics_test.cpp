#include <gtest/gtest.h>

#include "metrics.hpp"

namespace {

TEST(Metrics, RendersPrometheusText) {
    levee::Metrics m;
    m.describe("leveed_frames_in_total", "counter", "Frames received.");
    m.inc("leveed_frames_in_total", {{"type", "hello"}});
    m.inc("leveed_frames_in_total", {{"type", "hello"}}, 2);
    m.set("leveed_spool_bytes", {}, 1.5);
    const std::string text = m.render();
    EXPECT_NE(text.find("# HELP leveed_frames_in_total Frames received.\n"), std::string::npos) << text;
    EXPECT_NE(text.find("# TYPE leveed_frames_in_total counter\n"), std::string::npos);
    EXPECT_NE(text.find("leveed_frames_in_total{type=\"hello\"} 3\n"), std::string::npos);
    EXPECT_NE(text.find("# TYPE leveed_spool_bytes gauge\nleveed_spool_bytes 1.5\n"), std::string::npos);
    EXPECT_EQ(m.value("leveed_frames_in_total", {{"type", "hello"}}), 3);
}

TEST(Metrics, DescribedMetricsShowUpAtZero) {
    levee::Metrics m;
    m.describe("leveed_refused_total", "counter", "Refused.");
    EXPECT_NE(m.render().find("leveed_refused_total 0\n"), std::string::npos);
}

TEST(Metrics, EscapesLabelValues) {
    levee::Metrics m;
    m.inc("x_total", {{"node", "a\"b\\c"}});
    EXPECT_NE(m.render().find("x_total{node=\"a\\\"b\\\\c\"} 1"), std::string::npos) << m.render();
}

} // namespace
