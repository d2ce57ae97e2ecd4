#include <set>
#include <string>

#include <gtest/gtest.h>

#include "lua_scripts.hpp"
#include "script.hpp"

using levee::redis::sha1_hex;

TEST(Script, Sha1AsRedisNamesScripts) {
    // FIPS 180 test vectors
    EXPECT_EQ(sha1_hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    EXPECT_EQ(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    // what `redis-cli SCRIPT LOAD "return 1"` answers
    EXPECT_EQ(sha1_hex("return 1"), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}

TEST(Script, EveryEmbeddedScriptHasItsAccessorAndSource) {
    std::set<std::string> shas;
    for (const levee::lua::Script *s : levee::lua::all()) {
        EXPECT_FALSE(s->source.empty()) << s->name;
        EXPECT_NE(s->source.find("redis.call"), std::string::npos) << s->name;
        shas.insert(sha1_hex(s->source));
    }
    EXPECT_EQ(shas.size(), levee::lua::all().size());
    EXPECT_EQ(levee::lua::limit_lease().name, "limit_lease");
}
