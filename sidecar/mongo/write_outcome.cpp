#include "write_outcome.hpp"

#include <algorithm>
#include <cstdio>

namespace levee {

bool is_transient_server_error(std::int64_t code) {
    static constexpr std::int64_t kTransient[] = {
        6,     // HostUnreachable
        7,     // HostNotFound
        24,    // LockTimeout
        46,    // LockBusy
        50,    // MaxTimeMSExpired
        63,    // StaleShardVersion
        64,    // WriteConcernFailed
        89,    // NetworkTimeout
        91,    // ShutdownInProgress
        112,   // WriteConflict
        117,   // ConflictingOperationInProgress
        133,   // FailedToSatisfyReadPreference
        150,   // StaleEpoch
        189,   // PrimarySteppedDown
        202,   // NetworkInterfaceExceededTimeLimit
        262,   // ExceededTimeLimit
        9001,  // SocketException
        10107, // NotWritablePrimary
        11600, // InterruptedAtShutdown
        11602, // InterruptedDueToReplStateChange
        13388, // StaleConfig
        13435, // NotPrimaryNoSecondaryOk
        13436, // NotPrimaryOrSecondary
    };
    return std::find(std::begin(kTransient), std::end(kTransient), code) != std::end(kTransient);
}

BulkVerdict judge_bulk(const BulkAnswer &answer) {
    if (answer.write_concern_error || answer.retryable_label) {
        return BulkVerdict::kRetry;
    }
    bool indexes_valid = true;
    for (const auto &e : answer.write_errors) {
        if (is_transient_server_error(e.code)) {
            return BulkVerdict::kRetry;
        }
        indexes_valid = indexes_valid && e.index < answer.operations;
    }
    if (answer.write_errors.empty()) {
        return BulkVerdict::kRetry; // failed without a refusal: not the records' fault
    }
    // Every operation must be accounted for: a network error or a refused
    // command (ok: 0) after some operations leaves others unanswered.
    const bool adds_up = answer.applied >= 0 &&
                         static_cast<std::size_t>(answer.applied) + answer.write_errors.size() == answer.operations;
    return adds_up && indexes_valid ? BulkVerdict::kSettled : BulkVerdict::kOneByOne;
}

IndexFailure classify_index_failure(bool reached, std::int64_t code) {
    if (!reached || is_transient_server_error(code)) {
        return IndexFailure::kRetry;
    }
    switch (code) {
    case 85: // IndexOptionsConflict: same key, other expireAfterSeconds (or name)
    case 86: // IndexKeySpecsConflict: same name, other key
        return IndexFailure::kConflict;
    case 115: // CommandNotSupported
    case 238: // NotImplemented
        return IndexFailure::kUnsupported;
    default: return IndexFailure::kFailed;
    }
}

std::string printable_bytes(const std::string &s) {
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out.push_back(static_cast<char>(c));
        } else {
            char hex[5];
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out.append(hex);
        }
    }
    return out;
}

} // namespace levee
