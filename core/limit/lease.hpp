// The quota an nginx leases from leveed for a global key: how much it asks
// for, how an answer is applied, and how a request spends what is held.
#pragma once

#include <cstdint>

#include "core/limit/limit_table.hpp"

namespace levee::limit {

// A worker may spend this many tokens of a key ahead of its grant: the
// lease asked for next repays them.
constexpr int32_t kLeaseCredit = 1;

// Enough for the demand seen over the last interval, twice (asking ahead of
// need, as Doorman does), less what is still held; never more than the
// bucket can hold plus what it refills in two intervals, since Redis could
// not grant more anyway. 0: nothing to ask.
//
// A key's first lease (`first`) asks for at least the whole bucket: a client
// that just appeared may be firing its burst, and with a demand-sized lease
// it would meet 429s until the next sync interval although the bucket in
// Redis is full. Redis still grants each token once, so this costs other
// nginx instances nothing but the order in which they are served.
// Whether a lease's bucket parameters, as a peer sends them, are ones a zone
// can declare (1 us to 1 day per request, a bucket of at most kMaxSpanUs):
// anything else would overflow the GCRA arithmetic here and lose exactness
// in the Redis script's doubles.
bool lease_params_valid(uint64_t period_us, uint64_t capacity);

uint32_t lease_want(uint32_t demand, int32_t held, uint64_t capacity, uint64_t refill_per_sync, bool first = false);

// What the sync timer does with a key it takes from the queue of keys to
// lease for, at `now_ms` (32 bits of the clock, compared modulo 2^32, never
// 0): `waiting`, a request for the key is outstanding and younger than
// `timeout_ms`, so the key goes back in the queue untouched. Otherwise the
// outstanding request, if any, is given up: leveed answers what it cannot
// serve in time with a failure, so no answer at all means leveed itself is
// stuck and the key is as unavailable as if its lease had failed
// (`unanswered`). Then `want` is what to ask for; when it is 0 the demand
// seen is settled.
struct LeaseTurn {
    bool waiting;
    bool unanswered;
    uint32_t want;
};
LeaseTurn lease_turn(Entry &e, GlobalPart &g, uint32_t now_ms, uint64_t timeout_ms, uint64_t capacity,
                     uint64_t refill_per_sync);

// Applies leveed's answer for one key to its entry: the granted tokens are
// added (repaying any credit spent; saturating, since `granted` comes off
// the socket), the outstanding request is settled and
// the key counts as leased. A failed answer takes only this key out of
// global counting, since a failing Redis master holds only its own keys,
// until an answer succeeds. True: the key must be asked for again at the
// next sync (it failed).
bool lease_apply(Entry &e, GlobalPart &g, uint32_t granted, bool failed);

enum class Admission {
    kPass,     // a token was spent
    kRefuse,   // the key's leased quota is known spent: the limit's status code
    kFailMode, // no decision from the count (link down, the key's lease failed,
               // or no answer in time): levee_limit_fail decides
    kWait,     // nothing to spend, but no answer came for the key yet: wait for its first lease
};

struct GlobalDecision {
    Admission admission;
    // no lease is outstanding for the key: lease now rather than a sync
    // interval later
    bool ask_now;
    // kFailMode because the key's lease is not answered in time while the
    // link is up (not because the count is known away): counted and logged,
    // since this is where a slow leveed makes fail open admit
    bool late;
};

// A lease is outstanding for the key and older than `wait_ms` at `now_ms`
// (32 bits of the clock, compared modulo 2^32).
bool lease_late(const GlobalPart &g, uint32_t now_ms, uint32_t wait_ms);

// Decides one request to a global key and, when it passes, spends a token.
// Tokens held pass it whatever the link's state; the credit is spent only
// while the count is reachable (`link_ready` and the key's lease did not
// fail). Otherwise a request is refused only when the key has had an answer
// and spent it, and its next lease is not late (`late`: see lease_late): a
// slow leveed, Redis or nginx must not refuse a key that may be under its
// rate. A key never answered waits for its first lease while `may_wait` (the
// request has not yet waited out its time), then levee_limit_fail decides.
GlobalDecision global_admit(const Entry &e, GlobalPart &g, bool link_ready, bool may_wait, bool late);

} // namespace levee::limit
