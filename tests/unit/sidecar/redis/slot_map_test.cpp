#include "slot_map.hpp"

#include <gtest/gtest.h>

using levee::redis::HostPort;
using levee::redis::Reply;
using levee::redis::SlotMap;

namespace {

Reply integer(long long v) {
    Reply r;
    r.type = Reply::Type::Integer;
    r.integer = v;
    return r;
}

Reply string(std::string s) {
    Reply r;
    r.type = Reply::Type::String;
    r.str = std::move(s);
    return r;
}

Reply array(std::vector<Reply> elements) {
    Reply r;
    r.type = Reply::Type::Array;
    r.elements = std::move(elements);
    return r;
}

// A Redis 7 node entry: [host, port, id, {metadata}].
Reply node(const std::string &host, int port) {
    return array({string(host), integer(port), string("0123456789abcdef0123456789abcdef01234567"), array({})});
}

Reply range(int first, int last, Reply master, std::vector<Reply> replicas = {}) {
    std::vector<Reply> e{integer(first), integer(last), std::move(master)};
    for (auto &r : replicas) {
        e.push_back(std::move(r));
    }
    return array(std::move(e));
}

const HostPort kQueried{"10.0.0.9", 7000};

} // namespace

TEST(SlotMap, StartsEmpty) {
    SlotMap m;
    EXPECT_EQ(m.covered_slots(), 0u);
    EXPECT_EQ(m.node_for(0), nullptr);
    EXPECT_EQ(m.node_index(16383), SlotMap::kNoNode);
}

TEST(SlotMap, ParsesThreeMasterCluster) {
    const Reply r = array({
        range(0, 5460, node("127.0.0.1", 7000), {node("127.0.0.1", 7004)}),
        range(5461, 10922, node("127.0.0.1", 7001), {node("127.0.0.1", 7005)}),
        range(10923, 16383, node("127.0.0.1", 7002), {node("127.0.0.1", 7003)}),
    });
    SlotMap m;
    std::string error;
    ASSERT_TRUE(SlotMap::from_cluster_slots(r, kQueried, m, error)) << error;
    EXPECT_EQ(m.covered_slots(), 16384u);
    ASSERT_EQ(m.nodes().size(), 3u); // replicas are not routing targets
    EXPECT_EQ(*m.node_for(0), (HostPort{"127.0.0.1", 7000}));
    EXPECT_EQ(*m.node_for(5460), (HostPort{"127.0.0.1", 7000}));
    EXPECT_EQ(*m.node_for(5461), (HostPort{"127.0.0.1", 7001}));
    EXPECT_EQ(*m.node_for(12182), (HostPort{"127.0.0.1", 7002})); // "foo"
    EXPECT_EQ(*m.node_for(16383), (HostPort{"127.0.0.1", 7002}));
    const auto ranges = m.ranges_of(m.node_index(6000));
    ASSERT_EQ(ranges.size(), 1u);
    EXPECT_EQ(ranges[0], std::make_pair(5461, 10922));
}

TEST(SlotMap, SplitRangesOfOneMaster) {
    // After a migration one master may own several ranges.
    const Reply r = array({
        range(0, 99, node("a", 1)),
        range(100, 100, node("b", 2)),
        range(101, 16383, node("a", 1)),
    });
    SlotMap m;
    std::string error;
    ASSERT_TRUE(SlotMap::from_cluster_slots(r, kQueried, m, error)) << error;
    ASSERT_EQ(m.nodes().size(), 2u);
    const auto ranges = m.ranges_of(m.node_index(0));
    ASSERT_EQ(ranges.size(), 2u);
    EXPECT_EQ(ranges[0], std::make_pair(0, 99));
    EXPECT_EQ(ranges[1], std::make_pair(101, 16383));
}

TEST(SlotMap, UnknownHostMeansQueriedNode) {
    const Reply r = array({range(0, 16383, node("", 7001)), range(0, 0, node("?", 7002))});
    SlotMap m;
    std::string error;
    ASSERT_TRUE(SlotMap::from_cluster_slots(r, kQueried, m, error)) << error;
    EXPECT_EQ(*m.node_for(0), (HostPort{"10.0.0.9", 7002}));
    EXPECT_EQ(*m.node_for(1), (HostPort{"10.0.0.9", 7001}));
}

TEST(SlotMap, AcceptsPreRedis7NodeEntries) {
    const Reply r = array({range(0, 16383, array({string("h"), integer(6379)}))});
    SlotMap m;
    std::string error;
    ASSERT_TRUE(SlotMap::from_cluster_slots(r, kQueried, m, error)) << error;
    EXPECT_EQ(*m.node_for(42), (HostPort{"h", 6379}));
}

TEST(SlotMap, PartialCoverageLeavesGaps) {
    const Reply r = array({range(0, 99, node("a", 1))});
    SlotMap m;
    std::string error;
    ASSERT_TRUE(SlotMap::from_cluster_slots(r, kQueried, m, error)) << error;
    EXPECT_EQ(m.covered_slots(), 100u);
    EXPECT_EQ(m.node_for(100), nullptr);
}

TEST(SlotMap, RejectsMalformedReplies) {
    const std::vector<Reply> bad = {
        Reply::error("ERR This instance has cluster support disabled"),
        string("nope"),
        array({}),                                                  // no slots at all
        array({range(0, 16384, node("a", 1))}),                     // slot out of range
        array({range(10, 5, node("a", 1))}),                        // inverted
        array({array({integer(0), integer(1)})}),                   // no master
        array({range(0, 1, array({string("a"), string("1")}))}),    // port not an integer
        array({range(0, 1, array({string("a"), integer(70000)}))}), // port out of range
        array({array({string("0"), integer(1), node("a", 1)})}),    // slot not an integer
    };
    for (const Reply &r : bad) {
        SlotMap m;
        m.assign(7, HostPort{"keep", 1});
        std::string error;
        EXPECT_FALSE(SlotMap::from_cluster_slots(r, kQueried, m, error));
        EXPECT_FALSE(error.empty());
        ASSERT_NE(m.node_for(7), nullptr) << "map must be untouched on error";
        EXPECT_EQ(m.node_for(7)->host, "keep");
    }
}

TEST(SlotMap, AssignPatchesOneSlot) {
    const Reply r = array({range(0, 16383, node("a", 1))});
    SlotMap m;
    std::string error;
    ASSERT_TRUE(SlotMap::from_cluster_slots(r, kQueried, m, error)) << error;
    const uint16_t b = m.assign(3999, HostPort{"b", 2});
    EXPECT_EQ(m.node_index(3999), b);
    EXPECT_EQ(*m.node_for(3999), (HostPort{"b", 2}));
    EXPECT_EQ(*m.node_for(3998), (HostPort{"a", 1}));
    EXPECT_EQ(m.assign(4000, HostPort{"b", 2}), b); // known node keeps its index
    EXPECT_EQ(m.nodes().size(), 2u);
}

TEST(SlotMap, RoutesEqualIgnoresIndexOrder) {
    SlotMap x, y;
    std::string error;
    ASSERT_TRUE(SlotMap::from_cluster_slots(array({range(0, 99, node("a", 1)), range(100, 16383, node("b", 2))}),
                                            kQueried, x, error));
    ASSERT_TRUE(SlotMap::from_cluster_slots(array({range(100, 16383, node("b", 2)), range(0, 99, node("a", 1))}),
                                            kQueried, y, error));
    EXPECT_TRUE(x.routes_equal(y));
    y.assign(5, HostPort{"b", 2});
    EXPECT_FALSE(x.routes_equal(y));
}

TEST(ParseRedirect, ReadsSlotAndAddressOfMovedAndAsk) {
    const HostPort from{"10.0.0.9", 7000};
    uint16_t slot = 0;
    HostPort to;
    ASSERT_TRUE(levee::redis::parse_redirect("MOVED 3999 127.0.0.1:6381", from, slot, to));
    EXPECT_EQ(slot, 3999);
    EXPECT_EQ(to, (HostPort{"127.0.0.1", 6381}));
    ASSERT_TRUE(levee::redis::parse_redirect("ASK 16383 [::1]:7002", from, slot, to));
    EXPECT_EQ(slot, 16383);
    EXPECT_EQ(to, (HostPort{"::1", 7002}));
}

TEST(ParseRedirect, AnAddressWithoutHostIsOnTheNodeThatAnswered) {
    uint16_t slot = 0;
    HostPort to;
    ASSERT_TRUE(levee::redis::parse_redirect("MOVED 7 :7005", HostPort{"10.0.0.9", 7000}, slot, to));
    EXPECT_EQ(to, (HostPort{"10.0.0.9", 7005}));
}

TEST(ParseRedirect, RefusesWhatIsNotARedirect) {
    const HostPort from{"10.0.0.9", 7000};
    uint16_t slot = 0;
    HostPort to;
    for (const char *msg : {"MOVED", "MOVED 3999", "MOVED 16384 a:1", "MOVED -1 a:1", "MOVED 123456 a:1",
                            "MOVED 12 a:0", "MOVED 12 a", "MOVED  a:1", "MOVED x1 a:1"}) {
        EXPECT_FALSE(levee::redis::parse_redirect(msg, from, slot, to)) << msg;
    }
}
