#include <gtest/gtest.h>

#include "log.hpp"

namespace {

TEST(Log, OneLineWithLevelEventAndFields) {
    const std::string line =
        levee::log::format_line(levee::log::Level::kWarn, "hello_refused", {{"pid", 12}, {"client", "ngx"}});
    EXPECT_NE(line.find(" warn hello_refused pid=12 client=ngx"), std::string::npos) << line;
    EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(Log, QuotesValuesThatWouldBreakParsing) {
    const std::string line = levee::log::format_line(levee::log::Level::kInfo, "e",
                                                     {{"reason", "two words"}, {"q", "a\"b"}, {"nl", "x\ny"}, {"e", ""}});
    EXPECT_NE(line.find("reason=\"two words\""), std::string::npos) << line;
    EXPECT_NE(line.find("q=\"a\\\"b\""), std::string::npos) << line;
    EXPECT_NE(line.find("nl=\"x\\ny\""), std::string::npos) << line;
    EXPECT_NE(line.find("e=\"\""), std::string::npos) << line;
}

TEST(Log, LevelsParseAndFilter) {
    levee::log::Level l;
    EXPECT_TRUE(levee::log::parse_level("warn", l));
    EXPECT_EQ(l, levee::log::Level::kWarn);
    EXPECT_FALSE(levee::log::parse_level("loud", l));
    levee::log::set_level(levee::log::Level::kWarn);
    EXPECT_FALSE(levee::log::enabled(levee::log::Level::kInfo));
    EXPECT_TRUE(levee::log::enabled(levee::log::Level::kError));
    levee::log::set_level(levee::log::Level::kInfo);
}

} // namespace
