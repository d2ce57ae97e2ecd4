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

TEST(Metrics, ReplaceDropsSeriesNotInTheNewSet) {
    levee::Metrics m;
    m.describe("leveed_redis_node_commands_total", "counter", "Per node.");
    m.replace("leveed_redis_node_commands_total", {{{{"node", "a:1"}}, 5}, {{{"node", "b:1"}}, 7}});
    m.replace("leveed_redis_node_commands_total", {{{{"node", "b:1"}}, 8}, {{{"node", "c:1"}}, 1}});
    const std::string text = m.render();
    EXPECT_EQ(text.find("node=\"a:1\""), std::string::npos) << "a dropped series is still rendered:\n" << text;
    EXPECT_NE(text.find("leveed_redis_node_commands_total{node=\"b:1\"} 8\n"), std::string::npos) << text;
    EXPECT_NE(text.find("leveed_redis_node_commands_total{node=\"c:1\"} 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("# TYPE leveed_redis_node_commands_total counter\n"), std::string::npos) << text;
    EXPECT_EQ(m.value("leveed_redis_node_commands_total", {{"node", "a:1"}}), 0);
}

TEST(Metrics, ReplaceLeavesOtherFamiliesAlone) {
    levee::Metrics m;
    m.set("x_total", {{"node", "a:1"}}, 1);
    m.set("y_total", {{"node", "a:1"}}, 2);
    m.replace("x_total", {});
    EXPECT_EQ(m.render().find("x_total{"), std::string::npos) << m.render();
    EXPECT_EQ(m.value("y_total", {{"node", "a:1"}}), 2);
}

TEST(Metrics, HistogramBucketsAreCumulativeWithSumAndCount) {
    levee::Metrics m;
    m.describe_histogram("leveed_redis_command_duration_seconds", "Redis latency.", {0.01, 0.001, 0.1});
    const levee::Labels labels{{"command", "EVALSHA"}};
    for (double v : {0.0005, 0.001, 0.05, 3.0}) {
        m.observe("leveed_redis_command_duration_seconds", labels, v);
    }
    const std::string text = m.render();
    const std::string series = "leveed_redis_command_duration_seconds_bucket{command=\"EVALSHA\",le=";
    EXPECT_NE(text.find("# TYPE leveed_redis_command_duration_seconds histogram\n"), std::string::npos) << text;
    // 0.001 falls in le="0.001": the upper bound is inclusive.
    EXPECT_NE(text.find(series + "\"0.001\"} 2\n"), std::string::npos) << text;
    EXPECT_NE(text.find(series + "\"0.01\"} 2\n"), std::string::npos) << text;
    EXPECT_NE(text.find(series + "\"0.1\"} 3\n"), std::string::npos) << text;
    EXPECT_NE(text.find(series + "\"+Inf\"} 4\n"), std::string::npos) << text;
    EXPECT_NE(text.find("leveed_redis_command_duration_seconds_count{command=\"EVALSHA\"} 4\n"), std::string::npos);
    EXPECT_NE(text.find("leveed_redis_command_duration_seconds_sum{command=\"EVALSHA\"} 3.0515\n"), std::string::npos)
        << text;
    EXPECT_EQ(m.observations("leveed_redis_command_duration_seconds", labels), 4u);
}

TEST(Metrics, DeclaredHistogramShowsZeroBuckets) {
    levee::Metrics m;
    m.describe_histogram("leveed_frame_duration_seconds", "Frame handling.", {0.001});
    const std::string text = m.render();
    EXPECT_NE(text.find("leveed_frame_duration_seconds_bucket{le=\"0.001\"} 0\n"), std::string::npos) << text;
    EXPECT_NE(text.find("leveed_frame_duration_seconds_bucket{le=\"+Inf\"} 0\n"), std::string::npos) << text;
    EXPECT_NE(text.find("leveed_frame_duration_seconds_count 0\n"), std::string::npos) << text;
}

TEST(Metrics, UndeclaredHistogramIsIgnored) {
    levee::Metrics m;
    m.observe("nothing_seconds", {}, 1);
    EXPECT_EQ(m.render(), "");
}

} // namespace
