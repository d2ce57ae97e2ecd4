// The sticky balancer's core, driven without nginx: balance, disruption and
// restore over 1,000,000 keys and 10 servers, weights, next choices, bounded
// loads under a skewed key set, and stability of the mapping itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "core/sticky/bounded_load.hpp"
#include "core/sticky/ketama.hpp"
#include "core/sticky/key_hash.hpp"
#include "core/sticky/maglev.hpp"
#include "core/sticky/rendezvous.hpp"
#include "core/sticky/sticky_chooser.hpp"

using namespace levee::sticky;

namespace {

constexpr uint32_t kKeys = 1000000;
constexpr uint32_t kServers = 10;

std::vector<StickyServer> servers(uint32_t n, uint32_t first = 0) {
  std::vector<StickyServer> out;
  for (uint32_t i = first; i < first + n; i++) {
    out.push_back({"10.0.0." + std::to_string(i + 1) + ":8080", 1});
  }
  return out;
}

const std::vector<uint64_t> &key_hashes() {
  static std::vector<uint64_t> hashes = [] {
    std::vector<uint64_t> h;
    h.reserve(kKeys);
    for (uint32_t i = 0; i < kKeys; i++) {
      std::string k = "user-" + std::to_string(i);
      h.push_back(key_hash(k.data(), k.size()));
    }
    return h;
  }();
  return hashes;
}

std::unique_ptr<StickyChooser> build(Method m, const std::vector<StickyServer> &s) {
  std::string err;
  auto c = make_sticky_chooser(m, s, &err);
  EXPECT_TRUE(c) << err;
  return c;
}

const char *method_name(Method m) {
  switch (m) {
    case Method::kMaglev: return "maglev";
    case Method::kKetama: return "ketama";
    case Method::kRendezvous: return "rendezvous";
  }
  return "?";
}

double max_over_mean(const std::vector<uint64_t> &counts) {
  uint64_t sum = 0, mx = 0;
  for (uint64_t c : counts) {
    sum += c;
    mx = std::max(mx, c);
  }
  return double(mx) / (double(sum) / double(counts.size()));
}

// The mapping of every key under `c`, translated to server names so lists
// with and without a server compare.
std::vector<std::string> mapping(const StickyChooser &c, const std::vector<StickyServer> &s) {
  std::vector<std::string> out;
  out.reserve(kKeys);
  for (uint64_t h : key_hashes()) out.push_back(s[c.choose(h, 0)].name);
  return out;
}

}  // namespace

// ------------------------------------------------------------------ hash

TEST(KeyHash, MatchesXxHash64ReferenceVectors) {
  // Reference values from libxxhash 0.8.1 (XXH64).
  EXPECT_EQ(key_hash("", 0), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(key_hash("a", 1), 0xD24EC4F1A98C6E5BULL);
  EXPECT_EQ(key_hash("abc", 3), 0x44BC2CF5AD770999ULL);
  EXPECT_EQ(key_hash("user-42", 7), 0x397E9D3A76AF7C81ULL);
  EXPECT_EQ(key_hash("127.0.0.1:8001", 14, 7), 0xB3E024D29B7DE669ULL);
  unsigned char buf[100];
  for (int i = 0; i < 100; i++) buf[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(key_hash(buf, sizeof(buf), 0x1234), 0x9C5395B5DA7D2126ULL);
}

// ------------------------------------------------------------------ balance

TEST(Balance, MaglevBusiestServerWithin2PercentOfMean) {
  auto s = servers(kServers);
  auto c = build(Method::kMaglev, s);
  std::vector<uint64_t> counts(kServers, 0);
  for (uint64_t h : key_hashes()) counts[c->choose(h, 0)]++;
  double r = max_over_mean(counts);
  std::printf("[balance] maglev  %u keys, %u servers: busiest/mean = %.4f\n", kKeys, kServers, r);
  RecordProperty("maglev_max_over_mean", std::to_string(r));
  EXPECT_LE(r, 1.02);
}

TEST(Balance, AllMethodsFigures) {
  auto s = servers(kServers);
  for (Method m : {Method::kMaglev, Method::kKetama, Method::kRendezvous}) {
    auto c = build(m, s);
    std::vector<uint64_t> counts(kServers, 0);
    for (uint64_t h : key_hashes()) counts[c->choose(h, 0)]++;
    double r = max_over_mean(counts);
    std::printf("[balance] %-10s busiest/mean = %.4f\n", method_name(m), r);
    if (m == Method::kRendezvous) {
      EXPECT_LE(r, 1.02);
    }
    if (m == Method::kKetama) {
      EXPECT_LE(r, 1.25);
    }
  }
}

TEST(Balance, MaglevTableSharesDifferByAtMostOneSlot) {
  Maglev m(servers(kServers));
  std::vector<uint64_t> slots(kServers, 0);
  for (uint16_t i : m.table()) slots[i]++;
  auto mm = std::minmax_element(slots.begin(), slots.end());
  EXPECT_LE(*mm.second - *mm.first, 1u);
  EXPECT_EQ(m.table_size(), 65537u);
}

// ------------------------------------------------------------------ disruption
//
// A server leaves a sticky upstream in one of two ways. Marked `down` (what
// nginx's documentation asks for when a hash upstream must keep its mapping)
// or failing, it stays in the table and its keys take their next choice.
// Deleted from the list, the table is rebuilt without it. Both are measured
// for every method: moved keys against the ideal 1/N share, and moved keys
// that were not on the leaving server.

namespace {

struct Disruption {
  double moved_over_ideal;   // moved keys / (keys / N)
  uint64_t moved_others;     // moved keys that were not on the removed server
};

Disruption mark_down(Method m, uint32_t down) {
  auto all = servers(kServers);
  auto c = build(m, all);
  uint64_t moved = 0, others = 0;
  for (uint64_t h : key_hashes()) {
    uint32_t home = c->choose(h, 0);
    int64_t got = pick(*c, h, 20, [&](uint32_t i) { return i != down; });
    if (got != int64_t(home)) {
      moved++;
      if (home != down) others++;
    }
  }
  return {double(moved) / (double(kKeys) / kServers), others};
}

Disruption delete_one(Method m, uint32_t removed) {
  auto all = servers(kServers);
  auto fewer = all;
  fewer.erase(fewer.begin() + removed);
  auto before = mapping(*build(m, all), all);
  auto after = mapping(*build(m, fewer), fewer);
  uint64_t moved = 0, others = 0;
  for (uint32_t k = 0; k < kKeys; k++) {
    if (before[k] != after[k]) {
      moved++;
      if (before[k] != all[removed].name) others++;
    }
  }
  return {double(moved) / (double(kKeys) / kServers), others};
}

template <class Remove>
Disruption worst_of_each_in_turn(Method m, Remove remove) {
  Disruption worst{0, 0};
  for (uint32_t r = 0; r < kServers; r++) {
    Disruption d = remove(m, r);
    worst.moved_over_ideal = std::max(worst.moved_over_ideal, d.moved_over_ideal);
    worst.moved_others = std::max(worst.moved_others, d.moved_others);
  }
  return worst;
}

void report(const char *how, Method m, const Disruption &d) {
  std::printf("[disruption] %-10s %s 1 of %u (each in turn): worst moved = %.4fx ideal 1/N, "
              "worst keys of other servers moved = %llu (%.3f%% of keys)\n",
              method_name(m), how, kServers, d.moved_over_ideal, (unsigned long long) d.moved_others,
              100.0 * double(d.moved_others) / kKeys);
}

}  // namespace

TEST(Disruption, MarkingOneServerDownMovesOnlyItsKeys) {
  for (Method m : {Method::kMaglev, Method::kKetama, Method::kRendezvous}) {
    Disruption d = worst_of_each_in_turn(m, mark_down);
    report("down  ", m, d);
    RecordProperty(std::string(method_name(m)) + "_down_moved_over_ideal", std::to_string(d.moved_over_ideal));
    EXPECT_LE(d.moved_over_ideal, 1.15) << method_name(m);
    EXPECT_EQ(d.moved_others, 0u) << method_name(m);
  }
}

TEST(Disruption, DeletingOneServerFromTheList) {
  for (Method m : {Method::kMaglev, Method::kKetama, Method::kRendezvous}) {
    Disruption d = worst_of_each_in_turn(m, delete_one);
    report("delete", m, d);
    RecordProperty(std::string(method_name(m)) + "_delete_moved_over_ideal", std::to_string(d.moved_over_ideal));
    EXPECT_LE(d.moved_over_ideal, 1.15) << method_name(m);
    if (m == Method::kMaglev) {
      // A rebuilt Maglev table is refilled by turns, so a few slots of other
      // servers change hands too (0.24% of keys here): the price of its
      // slot-exact balance. Bounded so that a change making it worse fails.
      EXPECT_LE(d.moved_others, kKeys / 200) << method_name(m);
    } else {
      EXPECT_EQ(d.moved_others, 0u) << method_name(m);
    }
  }
}

TEST(Disruption, AddingTheServerBackRestoresTheMapping) {
  for (Method m : {Method::kMaglev, Method::kKetama, Method::kRendezvous}) {
    auto all = servers(kServers);
    auto original = mapping(*build(m, all), all);
    auto fewer = all;
    StickyServer gone = fewer[4];
    fewer.erase(fewer.begin() + 4);
    (void) mapping(*build(m, fewer), fewer);
    // Back, at the end of the list this time: the order must not matter.
    fewer.push_back(gone);
    auto restored = mapping(*build(m, fewer), fewer);
    uint64_t diff = 0;
    for (uint32_t k = 0; k < kKeys; k++) diff += original[k] != restored[k];
    EXPECT_EQ(diff, 0u) << method_name(m);
  }
}

// ------------------------------------------------------------------ weights

TEST(Weights, SharesFollowWeights) {
  std::vector<StickyServer> s = {{"a:1", 1}, {"b:1", 2}, {"c:1", 3}, {"d:1", 4}};
  for (Method m : {Method::kMaglev, Method::kKetama, Method::kRendezvous}) {
    auto c = build(m, s);
    std::vector<uint64_t> counts(s.size(), 0);
    for (uint64_t h : key_hashes()) counts[c->choose(h, 0)]++;
    double worst = 0;
    for (size_t i = 0; i < s.size(); i++) {
      double expected = double(kKeys) * s[i].weight / 10.0;
      worst = std::max(worst, std::abs(double(counts[i]) - expected) / expected);
    }
    std::printf("[weights] %-10s weights 1:2:3:4, worst deviation from weighted share = %.2f%%\n",
                method_name(m), 100 * worst);
    EXPECT_LE(worst, m == Method::kKetama ? 0.15 : 0.02) << method_name(m);
  }
}

// ------------------------------------------------------------------ failure

TEST(Failure, DownServerKeysTakeTheirNextChoiceAndComeBack) {
  auto s = servers(kServers);
  for (Method m : {Method::kMaglev, Method::kKetama, Method::kRendezvous}) {
    auto c = build(m, s);
    const uint32_t down = 6;
    std::vector<uint64_t> moved_to(kServers, 0);
    uint64_t moved = 0;
    for (uint64_t h : key_hashes()) {
      uint32_t home = c->choose(h, 0);
      int64_t got = pick(*c, h, 20, [&](uint32_t i) { return i != down; });
      ASSERT_GE(got, 0);
      if (home != down) {
        ASSERT_EQ(uint32_t(got), home);  // nobody else moves
      } else {
        moved++;
        moved_to[got]++;
      }
      // recovered: the home server again
      ASSERT_EQ(pick(*c, h, 20, [](uint32_t) { return true; }), int64_t(home));
    }
    moved_to.erase(moved_to.begin() + down);
    std::printf("[failure] %-10s server down: %llu keys moved, spread busiest/mean = %.3f\n",
                method_name(m), (unsigned long long) moved, max_over_mean(moved_to));
    // The down server's keys spread over the others instead of piling on one
    // (ketama hands them to ring neighbours, hence its looser bound).
    EXPECT_LE(max_over_mean(moved_to), m == Method::kKetama ? 2.0 : 1.1) << method_name(m);
  }
}

TEST(Failure, RendezvousNextChoiceIsWhereRemovalSendsTheKey) {
  auto all = servers(kServers);
  auto fewer = all;
  fewer.erase(fewer.begin() + 2);
  Rendezvous with(all), without(fewer);
  for (uint32_t k = 0; k < 100000; k++) {
    uint64_t h = key_hashes()[k];
    int64_t got = pick(with, h, 20, [](uint32_t i) { return i != 2; });
    ASSERT_EQ(all[got].name, fewer[without.choose(h, 0)].name);
  }
}

TEST(Failure, EveryServerDownGivesNone) {
  auto c = build(Method::kMaglev, servers(3));
  EXPECT_EQ(pick(*c, 42, 20, [](uint32_t) { return false; }), -1);
}

// ------------------------------------------------------------------ bounded load

namespace {

struct LoadRun {
  double worst_ratio;        // max in-flight / mean in-flight, steady state
  double worst_ratio_unbounded;
};

// In-flight requests under a skewed key set: 30% of requests carry one hot
// key, the rest follow a Zipf(1.1) over 10,000 users. Requests complete in
// random order; 1,000 are in flight at steady state.
LoadRun simulate(Method m, uint32_t factor_milli) {
  auto s = servers(kServers);
  auto c = build(m, s);
  std::mt19937_64 rng(12345);
  const uint32_t users = 10000;
  std::vector<double> cdf(users);
  double acc = 0;
  for (uint32_t u = 0; u < users; u++) cdf[u] = acc += 1.0 / std::pow(u + 1, 1.1);
  for (double &x : cdf) x /= acc;
  std::uniform_real_distribution<double> uni(0, 1);
  std::vector<uint64_t> user_hash(users);
  for (uint32_t u = 0; u < users; u++) {
    std::string k = "uid" + std::to_string(u);
    user_hash[u] = key_hash(k.data(), k.size());
  }

  std::vector<uint64_t> load(kServers, 0), load_free(kServers, 0);
  std::vector<uint32_t> flight, flight_free;
  double worst = 0, worst_free = 0;
  for (uint32_t step = 0; step < 400000; step++) {
    if (flight.size() >= 1000) {
      size_t j = rng() % flight.size();
      load[flight[j]]--;
      flight[j] = flight.back();
      flight.pop_back();
      load_free[flight_free[j]]--;
      flight_free[j] = flight_free.back();
      flight_free.pop_back();
    }
    uint64_t h = uni(rng) < 0.3 ? user_hash[0]
                                : user_hash[std::lower_bound(cdf.begin(), cdf.end(), uni(rng)) -
                                            cdf.begin()];
    uint64_t total = flight.size();
    int64_t i = pick(*c, h, 20, [&](uint32_t i) {
      return load[i] + 1 <= bounded_capacity(total, 1, kServers, factor_milli);
    });
    EXPECT_GE(i, 0);
    load[i]++;
    flight.push_back(uint32_t(i));
    uint32_t home = c->choose(h, 0);
    load_free[home]++;
    flight_free.push_back(home);

    if (flight.size() >= 1000) {
      double mean = double(flight.size()) / kServers;
      worst = std::max(worst, double(*std::max_element(load.begin(), load.end())) / mean);
      worst_free =
          std::max(worst_free, double(*std::max_element(load_free.begin(), load_free.end())) / mean);
    }
  }
  return {worst, worst_free};
}

}  // namespace

TEST(Stability, ParseMethodNamesTheThreeMethodsOnly) {
  Method m = Method::kMaglev;
  EXPECT_TRUE(parse_method("rendezvous", 10, &m));
  EXPECT_EQ(m, Method::kRendezvous);
  EXPECT_TRUE(parse_method("ketama", 6, &m));
  EXPECT_EQ(m, Method::kKetama);
  EXPECT_TRUE(parse_method("maglev", 6, &m));
  EXPECT_EQ(m, Method::kMaglev);
  EXPECT_FALSE(parse_method("maglevx", 7, &m));
  EXPECT_FALSE(parse_method("magle", 5, &m));
  EXPECT_FALSE(parse_method("", 0, &m));
}

// pick_for_key: the rules get_peer applies to the choice sequence.
TEST(PickForKey, FallbackOffIsTheHomeServerOrNone) {
  auto c = build(Method::kMaglev, servers(kServers));
  uint64_t h = key_hash(reinterpret_cast<const unsigned char *>("alice"), 5);
  uint32_t home = c->choose(h, 0);
  EXPECT_EQ(pick_for_key(*c, h, 20, false, false, [](uint32_t, bool) { return true; }), int64_t(home));
  EXPECT_EQ(pick_for_key(*c, h, 20, false, false, [&](uint32_t i, bool) { return i != home; }), -1);
}

TEST(PickForKey, FallbackTakesTheNextChoiceWithinTheBound) {
  auto c = build(Method::kMaglev, servers(kServers));
  uint64_t h = key_hash(reinterpret_cast<const unsigned char *>("alice"), 5);
  uint32_t home = c->choose(h, 0);
  int64_t next = pick(*c, h, 20, [&](uint32_t i) { return i != home; });
  // the home server is at its bound: the bounded check is what refuses it
  auto at_bound = [&](uint32_t i, bool within) { return !within || i != home; };
  EXPECT_EQ(pick_for_key(*c, h, 20, true, true, at_bound), next);
  EXPECT_EQ(pick_for_key(*c, h, 20, true, false, at_bound), int64_t(home));
}

TEST(PickForKey, EveryServerAtItsBoundKeepsTheKeysOwnOrder) {
  auto c = build(Method::kMaglev, servers(kServers));
  uint64_t h = key_hash(reinterpret_cast<const unsigned char *>("alice"), 5);
  uint32_t home = c->choose(h, 0);
  EXPECT_EQ(pick_for_key(*c, h, 20, true, true, [](uint32_t, bool within) { return !within; }), int64_t(home));
  EXPECT_EQ(pick_for_key(*c, h, 20, true, true, [](uint32_t, bool) { return false; }), -1);
}

TEST(BoundedLoad, NoServerAbove125PercentOfMeanUnderSkew) {
  for (Method m : {Method::kMaglev, Method::kKetama, Method::kRendezvous}) {
    LoadRun r = simulate(m, 1250);
    std::printf("[bounded] %-10s skewed keys, 1000 in flight: busiest/mean = %.4f with "
                "bounded_load=1.25, %.4f without\n",
                method_name(m), r.worst_ratio, r.worst_ratio_unbounded);
    EXPECT_LE(r.worst_ratio, 1.25) << method_name(m);
    EXPECT_GT(r.worst_ratio_unbounded, 1.5) << "the key set is not skewed enough to matter";
  }
}

TEST(BoundedLoad, CapacityIsCeilOfFactorTimesWeightedMean) {
  EXPECT_EQ(bounded_capacity(999, 1, 10, 1250), 125u);
  EXPECT_EQ(bounded_capacity(0, 1, 10, 1250), 1u);
  EXPECT_EQ(bounded_capacity(99, 3, 6, 1000), 50u);
  EXPECT_EQ(bounded_capacity(100, 1, 4, 1500), 38u);  // ceil(1.5 * 101 / 4) = 38
}

TEST(BoundedLoad, ParseFactor) {
  uint32_t f = 0;
  auto ok = [&](const char *s) { return parse_load_factor(s, std::strlen(s), &f); };
  EXPECT_TRUE(ok("1.25"));
  EXPECT_EQ(f, 1250u);
  EXPECT_TRUE(ok("2"));
  EXPECT_EQ(f, 2000u);
  EXPECT_TRUE(ok("1.005"));
  EXPECT_EQ(f, 1005u);
  for (const char *bad : {"", "0.9", "1.", ".5", "abc", "1.2345", "101", "1,5", "-1.2", "1.25x"}) {
    EXPECT_FALSE(ok(bad)) << bad;
  }
}

// ------------------------------------------------------------------ stability

TEST(Stability, SameListSameTableWhateverTheOrder) {
  auto s = servers(kServers);
  auto r = s;
  std::reverse(r.begin(), r.end());
  for (Method m : {Method::kMaglev, Method::kKetama, Method::kRendezvous}) {
    auto a = build(m, s), b = build(m, r);
    for (uint32_t k = 0; k < 200000; k++) {
      uint64_t h = key_hashes()[k];
      ASSERT_EQ(s[a->choose(h, 0)].name, r[b->choose(h, 0)].name) << method_name(m);
    }
  }
}

TEST(Stability, DuplicateServersAreDistinct) {
  std::vector<StickyServer> s = {{"a:1", 1}, {"a:1", 1}};
  for (Method m : {Method::kMaglev, Method::kKetama, Method::kRendezvous}) {
    auto c = build(m, s);
    std::vector<uint64_t> counts(2, 0);
    for (uint32_t k = 0; k < 100000; k++) counts[c->choose(key_hashes()[k], 0)]++;
    EXPECT_GT(counts[0], 30000u) << method_name(m);
    EXPECT_GT(counts[1], 30000u) << method_name(m);
  }
}

TEST(Stability, RejectsBadLists) {
  std::string err;
  EXPECT_FALSE(make_sticky_chooser(Method::kMaglev, {}, &err));
  EXPECT_FALSE(make_sticky_chooser(Method::kMaglev, {{"a:1", 0}}, &err));
  EXPECT_NE(err.find("weight 0"), std::string::npos);
}
