#include "cluster_client.hpp"

#include <algorithm>
#include <set>

#include <event2/event.h>

#include "core/link/backoff.hpp"
#include "crc16.hpp"
#include "log.hpp"

namespace levee::redis {
namespace {

timeval to_timeval(int64_t ms) {
    timeval tv;
    ms = std::max<int64_t>(ms, 0);
    tv.tv_sec = static_cast<time_t>(ms / 1000);
    tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
    return tv;
}

} // namespace

ClusterClient::ClusterClient(event_base *base, std::vector<HostPort> seeds, ClusterOptions opts)
    : base_(base), seeds_(std::move(seeds)), opts_(opts), rng_(std::random_device{}()) {
    if (opts_.resolver == nullptr) {
        own_resolver_ = make_dns_resolver(base_);
        opts_.resolver = own_resolver_.get();
    }
    retry_ev_.reset(evtimer_new(
        base_, [](int, short, void *arg) { static_cast<ClusterClient *>(arg)->run_retries(); }, this));
    refresh_ev_.reset(evtimer_new(
        base_,
        [](int, short, void *arg) {
            auto *self = static_cast<ClusterClient *>(arg);
            self->refresh_scheduled_ = false;
            self->run_refresh(false);
        },
        this));
    // One periodic sweep finds frozen nodes and stalled connects: cheaper
    // than a timer per command, and ~10% slack on the timeout is fine.
    tick_ev_.reset(event_new(
        base_, -1, EV_PERSIST,
        [](int, short, void *arg) {
            auto *self = static_cast<ClusterClient *>(arg);
            const int64_t now = now_ms();
            for (auto &entry : self->nodes_) {
                entry.second->check_timeouts(now);
            }
            // Departed nodes whose last commands were answered (or lost) since.
            self->retire_departed();
        },
        this));
    retire_ev_.reset(evtimer_new(
        base_, [](int, short, void *arg) { static_cast<ClusterClient *>(arg)->retire_departed(); }, this));
    const int tick_ms = std::clamp(std::min(opts_.command_timeout_ms, opts_.connect_timeout_ms) / 10, 5, 100);
    const timeval tick = to_timeval(tick_ms);
    event_add(tick_ev_.get(), &tick);
}

ClusterClient::~ClusterClient() {
    shutting_down_ = true;
    retry_ev_.reset();
    refresh_ev_.reset();
    tick_ev_.reset();
    retire_ev_.reset();
    // Silent: the commands they carried are failed below.
    nodes_.clear();
    slot_nodes_.clear();
    auto commands = std::move(commands_);
    commands_.clear();
    const Reply shutdown = Reply::error("LEVEE_SHUTDOWN redis cluster client destroyed");
    for (auto &entry : commands) {
        if (entry.second->cb) {
            entry.second->cb(shutdown);
        }
    }
    auto waiters = std::move(drain_waiters_);
    for (auto &done : waiters) {
        done();
    }
}

void ClusterClient::start(std::function<void(bool ok, const std::string &error)> on_ready) {
    on_ready_ = std::move(on_ready);
    run_refresh(true);
}

void ClusterClient::set_wait(int replicas, int timeout_ms) {
    opts_.wait_replicas = replicas;
    opts_.wait_timeout_ms = timeout_ms;
    for (auto &entry : nodes_) {
        entry.second->set_wait(replicas, timeout_ms);
    }
}

void ClusterClient::set_auth(const std::string &user, const std::string &password) {
    opts_.user = user;
    opts_.password = password;
    for (auto &entry : nodes_) {
        entry.second->set_auth(user, password);
    }
}

NodeConnection &ClusterClient::node(const HostPort &addr) {
    std::string name = addr.str();
    // Wanted again (a redirect, a refresh) before it was retired: keep it.
    departed_.erase(name);
    auto it = nodes_.find(name);
    if (it == nodes_.end()) {
        NodeConnection::Options nopts;
        nopts.connect_timeout_ms = opts_.connect_timeout_ms;
        nopts.command_timeout_ms = opts_.command_timeout_ms;
        nopts.wait_replicas = opts_.wait_replicas;
        nopts.wait_timeout_ms = opts_.wait_timeout_ms;
        nopts.reconnect_min_ms = opts_.retry_backoff_min_ms;
        nopts.reconnect_max_ms = opts_.retry_backoff_max_ms;
        nopts.user = opts_.user;
        nopts.password = opts_.password;
        nopts.resolver = opts_.resolver;
        nopts.tls = opts_.tls;
        NodeConnection::Handler &handler = *this;
        it = nodes_.emplace(std::move(name), std::make_unique<NodeConnection>(base_, addr, nopts, handler)).first;
    }
    return *it->second;
}

bool ClusterClient::command(std::string_view key, std::vector<std::string> argv, Callback cb) {
    if (shutting_down_ || commands_.size() >= opts_.max_in_flight) {
        ++stats_.refused_full;
        return false;
    }
    auto c = std::make_unique<Command>();
    c->id = next_id_++;
    c->slot = key_slot(key);
    c->argv = std::move(argv);
    c->cb = std::move(cb);
    c->started_ms = now_ms();
    Command &ref = *c;
    commands_.emplace(ref.id, std::move(c));
    ++stats_.commands;
    dispatch(ref);
    return true;
}

void ClusterClient::dispatch(Command &c) {
    NodeConnection *target = nullptr;
    if (c.ask) {
        c.ask = false;
        target = &node(c.ask_to);
        std::string error;
        // ASKING is valid for the next command only; both go out on the same
        // connection back to back, so nothing can slip in between.
        if (!target->send(NodeConnection::Kind::Asking, 0, {"ASKING"}, error)) {
            park(c, "connect to " + target->name() + ": " + error, false);
            return;
        }
    } else {
        const uint16_t idx = slots_.node_index(c.slot);
        if (idx == SlotMap::kNoNode || idx >= slot_nodes_.size()) {
            // Without a slot map the refresh's failure is the useful part
            // (a refused AUTH, every seed down).
            park(c,
                 "no node serves slot " + std::to_string(c.slot) +
                     (refresh_last_failure_.empty() ? "" : " (topology refresh failed: " + refresh_last_failure_ + ")"),
                 false);
            request_refresh();
            return;
        }
        target = slot_nodes_[idx];
    }
    std::string error;
    if (!target->send(NodeConnection::Kind::Command, c.id, c.argv, error)) {
        ++stats_.per_node_commands_errors[target->name()].second;
        park(c, "connect to " + target->name() + ": " + error, false);
        request_refresh();
        return;
    }
    ++stats_.per_node_commands_errors[target->name()].first;
}

void ClusterClient::on_node_reply(NodeConnection &node, NodeConnection::Kind kind, uint64_t id, const Reply *reply,
                                  int replicas_acked) {
    if (shutting_down_) {
        return;
    }
    if (kind == NodeConnection::Kind::Refresh) {
        handle_refresh_reply(node, id, reply);
        return;
    }
    auto it = commands_.find(id);
    if (it == commands_.end()) {
        return;
    }
    handle_command_reply(node, *it->second, reply, replicas_acked);
}

void ClusterClient::handle_command_reply(NodeConnection &node, Command &c, const Reply *reply, int replicas_acked) {
    if (reply == nullptr) {
        // Unanswered: it may or may not have run. Only a later answer counts.
        ++stats_.per_node_commands_errors[node.name()].second;
        const bool timeout = node.last_error().find("timeout") != std::string::npos;
        park(c, node.last_error() + " on " + node.name(), timeout);
        request_refresh();
        return;
    }
    if (reply->error_is("MOVED") || reply->error_is("ASK")) {
        const bool moved = reply->error_is("MOVED");
        uint16_t slot = 0;
        HostPort to;
        if (!parse_redirect(reply->str, node.addr(), slot, to)) {
            complete(c.id, *reply);
            return;
        }
        ++(moved ? stats_.moved : stats_.ask);
        if (++c.redirects > opts_.max_redirects) {
            complete(c.id, Reply::error("LEVEE_UNAVAILABLE too many redirects, last: " + reply->str));
            return;
        }
        if (moved) {
            const uint16_t idx = slots_.assign(slot, to);
            if (idx >= slot_nodes_.size()) {
                slot_nodes_.resize(idx + 1u, nullptr);
            }
            slot_nodes_[idx] = &this->node(to);
            // One MOVED usually means a whole range moved: learn all of it.
            request_refresh();
        } else {
            c.ask = true;
            c.ask_to = to;
        }
        dispatch(c);
        return;
    }
    if (reply->error_is("NOSCRIPT") && c.argv.size() > 1 && c.argv[0] == "EVALSHA") {
        const auto script = scripts_.find(c.argv[1]);
        if (script != scripts_.end() && ++c.redirects <= opts_.max_redirects) {
            std::string error;
            // One connection runs commands in order: the load precedes the retry.
            if (node.send(NodeConnection::Kind::Load, 0, {"SCRIPT", "LOAD", script->second}, error) &&
                node.send(NodeConnection::Kind::Command, c.id, c.argv, error)) {
                ++stats_.per_node_commands_errors[node.name()].first;
                return;
            }
            park(c, "connect to " + node.name() + ": " + error, false);
            return;
        }
    }
    // Transient cluster states: the same command will work shortly, on this
    // node (TRYAGAIN, LOADING) or on whichever one takes over the slot.
    if (reply->error_is("TRYAGAIN") || reply->error_is("LOADING")) {
        park(c, reply->str, false);
        return;
    }
    if (reply->error_is("CLUSTERDOWN") || reply->error_is("MASTERDOWN") || reply->error_is("READONLY")) {
        park(c, reply->str, false);
        request_refresh();
        return;
    }
    if (reply->is_error()) {
        ++stats_.per_node_commands_errors[node.name()].second;
    }
    // -1: no WAIT followed it (sent before a reload turned WAIT on)
    if (replicas_acked >= 0 && replicas_acked < opts_.wait_replicas && !reply->is_error()) {
        ++stats_.wait_short;
        Reply copy = *reply;
        copy.unreplicated = true;
        complete(c.id, copy);
        return;
    }
    complete(c.id, *reply);
}

void ClusterClient::park(Command &c, std::string why, bool timeout) {
    c.last_error = std::move(why);
    c.last_was_timeout = timeout;
    ++c.attempts;
    ++stats_.retries;
    const int64_t now = now_ms();
    const int64_t delay = levee::link::backoff_delay(static_cast<uint32_t>(c.attempts - 1),
                                                     static_cast<uint32_t>(opts_.retry_backoff_min_ms),
                                                     static_cast<uint32_t>(opts_.retry_backoff_max_ms), rng_());
    // Wake at the deadline at the latest, to fail it then.
    const int64_t due = std::min<int64_t>(now + delay, c.started_ms + opts_.max_retry_ms);
    parked_.emplace(due, c.id);
    arm_retry_timer(due);
}

void ClusterClient::arm_retry_timer(int64_t due) {
    if (!retry_ev_ || (retry_armed_due_ >= 0 && retry_armed_due_ <= due)) {
        return;
    }
    retry_armed_due_ = due;
    const timeval tv = to_timeval(due - now_ms());
    evtimer_add(retry_ev_.get(), &tv);
}

void ClusterClient::run_retries() {
    retry_armed_due_ = -1;
    const int64_t now = now_ms();
    const bool wake_all = wake_parked_;
    wake_parked_ = false;
    std::vector<uint64_t> due;
    while (!parked_.empty() && (wake_all || parked_.top().first <= now)) {
        due.push_back(parked_.top().second);
        parked_.pop();
    }
    for (uint64_t id : due) {
        auto it = commands_.find(id);
        if (it == commands_.end()) {
            continue;
        }
        Command &c = *it->second;
        if (now - c.started_ms >= opts_.max_retry_ms) {
            const char *code = c.last_was_timeout ? "LEVEE_TIMEOUT" : "LEVEE_UNAVAILABLE";
            complete(id, Reply::error(std::string(code) + " gave up after " + std::to_string(now - c.started_ms) +
                                      " ms and " + std::to_string(c.attempts) + " attempts: " + c.last_error));
            continue;
        }
        dispatch(c);
    }
    if (!parked_.empty()) {
        arm_retry_timer(parked_.top().first);
    }
}

void ClusterClient::complete(uint64_t id, const Reply &reply) {
    auto it = commands_.find(id);
    if (it == commands_.end()) {
        return;
    }
    // Out of the table before the callback, which may issue commands.
    std::unique_ptr<Command> c = std::move(it->second);
    commands_.erase(it);
    if (reply.is_error()) {
        ++stats_.errors;
    }
    // The client's own errors say Redis did not answer; Redis's say it did.
    stats_.reachable = !(reply.is_error() &&
                         (reply.str.rfind("LEVEE_UNAVAILABLE", 0) == 0 || reply.str.rfind("LEVEE_TIMEOUT", 0) == 0));
    if (latency_observer_) {
        latency_observer_(static_cast<double>(now_ms() - c->started_ms) / 1000.0);
    }
    if (c->cb) {
        c->cb(reply);
    }
    check_drained();
}

void ClusterClient::check_drained() {
    if (!commands_.empty() || drain_waiters_.empty()) {
        return;
    }
    auto waiters = std::move(drain_waiters_);
    drain_waiters_.clear();
    for (auto &done : waiters) {
        done();
    }
}

void ClusterClient::drain(std::function<void()> done) {
    drain_waiters_.push_back(std::move(done));
    check_drained();
}

void ClusterClient::on_node_down(NodeConnection &node, const std::string &why) {
    if (shutting_down_) {
        return;
    }
    if (node.auth_refused()) {
        ++stats_.auth_failures;
        // A wrong password stays wrong: once per node until an AUTH succeeds,
        // not once per reconnect. Redis's text, never what we sent.
        if (node.auth_refusals() == 1) {
            log::error("redis_auth_failed", {{"node", node.name()}, {"error", node.auth_error()}});
        }
        request_refresh();
        return;
    }
    ++(why.find("timeout") != std::string::npos ? stats_.timeouts : stats_.connection_errors);
    // Once per outage, not once per failed reconnect.
    if (node.connect_failures() <= 1) {
        log::warn("redis_node_down", {{"node", node.name()}, {"reason", why}});
    }
    request_refresh();
}

void ClusterClient::request_refresh() {
    if (refresh_in_progress_ || refresh_scheduled_ || !refresh_ev_) {
        return;
    }
    // Back off while refreshes keep failing (whole cluster unreachable).
    const int interval = std::max(
        opts_.refresh_min_interval_ms,
        refresh_failures_ == 0
            ? 0
            : static_cast<int>(levee::link::backoff_delay(static_cast<uint32_t>(refresh_failures_ - 1),
                                                          static_cast<uint32_t>(opts_.retry_backoff_min_ms),
                                                          static_cast<uint32_t>(opts_.retry_backoff_max_ms), rng_())));
    const int64_t wait = std::max<int64_t>(0, last_refresh_ms_ + interval - now_ms());
    refresh_scheduled_ = true;
    const timeval tv = to_timeval(wait);
    evtimer_add(refresh_ev_.get(), &tv);
}

void ClusterClient::run_refresh(bool all_seeds) {
    // Ask a few nodes at once and take the first good answer: one of them
    // may be frozen, and waiting for its timeout would stall the failover.
    constexpr std::size_t kAskAtOnce = 3;
    std::vector<HostPort> candidates;
    std::set<std::string> seen;
    auto add = [&](const HostPort &hp) {
        if (seen.insert(hp.str()).second) {
            candidates.push_back(hp);
        }
    };
    if (!all_seeds) {
        for (const HostPort &hp : slots_.nodes()) {
            add(hp);
        }
    }
    for (const HostPort &hp : seeds_) {
        add(hp);
    }
    std::vector<HostPort> chosen;
    if (all_seeds) {
        chosen = candidates;
    } else {
        // Nodes that failed lately (dead, or frozen and timing out) go last:
        // their answer would come late or never.
        constexpr int64_t kSuspectMs = 5000;
        const int64_t now = now_ms();
        std::vector<HostPort> healthy, suspect;
        for (const HostPort &hp : candidates) {
            auto it = nodes_.find(hp.str());
            const bool bad = it != nodes_.end() && it->second->last_failure_ms() >= 0 &&
                             now - it->second->last_failure_ms() < kSuspectMs;
            (bad ? suspect : healthy).push_back(hp);
        }
        // Rotate so that the same node is not always asked first.
        for (auto *group : {&healthy, &suspect}) {
            for (std::size_t i = 0; i < group->size() && chosen.size() < kAskAtOnce; ++i) {
                chosen.push_back((*group)[(refresh_rotation_ + i) % group->size()]);
            }
        }
        ++refresh_rotation_;
    }

    ++refresh_generation_;
    refresh_in_progress_ = true;
    refresh_outstanding_ = 0;
    refresh_error_.clear();
    last_refresh_ms_ = now_ms();
    for (const HostPort &hp : chosen) {
        NodeConnection &nc = node(hp);
        std::string error;
        if (nc.send(NodeConnection::Kind::Refresh, refresh_generation_, {"CLUSTER", "SLOTS"}, error)) {
            ++refresh_outstanding_;
        } else {
            refresh_error_ = hp.str() + ": " + error;
        }
    }
    if (refresh_outstanding_ == 0) {
        refresh_failed(chosen.empty() ? "no node to ask" : refresh_error_);
    }
}

void ClusterClient::handle_refresh_reply(NodeConnection &node, uint64_t generation, const Reply *reply) {
    if (!refresh_in_progress_ || generation != refresh_generation_) {
        return; // a slower answer to a refresh already settled
    }
    if (reply != nullptr) {
        SlotMap map;
        std::string error;
        if (SlotMap::from_cluster_slots(*reply, node.addr(), map, error)) {
            refresh_in_progress_ = false;
            refresh_failures_ = 0;
            refresh_last_failure_.clear();
            ++stats_.slot_refreshes;
            stats_.reachable = true;
            apply_slot_map(std::move(map));
            if (on_ready_) {
                auto ready = std::move(on_ready_);
                on_ready_ = nullptr;
                ready(true, "");
            }
            return;
        }
        refresh_error_ = node.name() + ": " + error;
    } else {
        refresh_error_ = node.name() + ": " + node.last_error();
    }
    if (--refresh_outstanding_ > 0) {
        return;
    }
    refresh_failed(refresh_error_);
}

void ClusterClient::refresh_failed(const std::string &error) {
    refresh_in_progress_ = false;
    ++refresh_failures_;
    refresh_last_failure_ = error;
    stats_.reachable = false;
    log::warn("redis_slots_refresh_failed", {{"error", error}, {"failures", refresh_failures_}});
    if (on_ready_) {
        auto ready = std::move(on_ready_);
        on_ready_ = nullptr;
        ready(false, "no seed answered CLUSTER SLOTS: " + error);
    }
    if (!commands_.empty()) {
        request_refresh();
    }
}

void ClusterClient::apply_slot_map(SlotMap map) {
    const bool changed = !slots_.routes_equal(map);
    slots_ = std::move(map);
    slot_nodes_.clear();
    for (const HostPort &hp : slots_.nodes()) {
        slot_nodes_.push_back(&node(hp));
    }
    if (changed) {
        mark_departed();
        log::info("redis_slots_changed", {{"masters", static_cast<unsigned long>(slots_.nodes().size())},
                                          {"covered", static_cast<unsigned long>(slots_.covered_slots())}});
        // Parked commands were waiting for exactly this: retry them now
        // rather than at the end of their backoff.
        if (!parked_.empty()) {
            wake_parked_ = true;
            retry_armed_due_ = -1;
            const timeval now{0, 0};
            evtimer_add(retry_ev_.get(), &now);
        }
    }
}

void ClusterClient::mark_departed() {
    std::set<std::string> kept;
    for (const HostPort &hp : slots_.nodes()) {
        kept.insert(hp.str());
    }
    for (const HostPort &hp : seeds_) {
        kept.insert(hp.str());
    }
    for (const auto &entry : nodes_) {
        if (kept.count(entry.first) == 0) {
            departed_.insert(entry.first);
        }
    }
    if (!departed_.empty() && retire_ev_) {
        // This runs inside the callback of the connection that answered
        // CLUSTER SLOTS, which may be one of those to destroy.
        const timeval now{0, 0};
        evtimer_add(retire_ev_.get(), &now);
    }
}

void ClusterClient::retire_departed() {
    for (auto it = departed_.begin(); it != departed_.end();) {
        const auto node = nodes_.find(*it);
        if (node == nodes_.end()) {
            it = departed_.erase(it);
            continue;
        }
        if (node->second->unanswered() > 0) {
            ++it; // its replies are still delivered; the tick looks again
            continue;
        }
        log::info("redis_node_retired", {{"node", *it}});
        nodes_.erase(node);
        // Its counters go with it: with failovers rebuilding nodes at new
        // addresses, keeping them would grow the map (and /metrics) forever.
        stats_.per_node_commands_errors.erase(*it);
        ++stats_.connections_retired;
        it = departed_.erase(it);
    }
}

void ClusterClient::register_script(std::string sha1, std::string source) {
    scripts_[std::move(sha1)] = std::move(source);
}

std::vector<ClusterClient::MasterInfo> ClusterClient::masters() const {
    std::vector<MasterInfo> out;
    for (std::size_t i = 0; i < slots_.nodes().size(); ++i) {
        auto ranges = slots_.ranges_of(static_cast<uint16_t>(i));
        if (!ranges.empty()) {
            out.push_back(MasterInfo{slots_.nodes()[i], std::move(ranges)});
        }
    }
    return out;
}

} // namespace levee::redis
