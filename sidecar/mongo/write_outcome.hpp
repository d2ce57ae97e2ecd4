// What the database's answers mean for the presence writer: whether a failed
// bulk write is worth sending again, which of its records were refused for
// good, and what to do when the TTL index cannot be created. Plain C++ (no
// libmongoc types) so the decisions have unit tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace levee {

// Server error codes that say "not now" rather than "never": the node is not
// (or no longer) primary, is shutting down, a shard's routing is stale, a
// timeout or a conflict with a concurrent operation. The same write sent
// again later can succeed.
bool is_transient_server_error(std::int64_t code);

struct WriteError {
    std::size_t index; // of the operation in the bulk write
    std::int64_t code;
    std::string message;
};

// The reply of an unordered bulk write that did not fully succeed.
struct BulkAnswer {
    std::size_t operations = 0; // sent
    std::int64_t applied = 0;   // matched + upserted
    std::vector<WriteError> write_errors;
    bool write_concern_error = false; // applied, but not as durably as asked
    bool retryable_label = false;     // errorLabels has RetryableWriteError
};

// What a bulk write that did not fully succeed calls for.
enum class BulkVerdict {
    // Every operation was either applied or refused with a permanent write
    // error: sending it again would only get the same refusals.
    kSettled,
    // Send the whole batch again later (idempotent: the writer upserts with
    // $max): a network error or a command refused whole left operations
    // unanswered, or an error was transient.
    kRetry,
    // Only permanent write errors, but the counts do not add up: the server
    // stopped at the first refusal or did not say which (FerretDB v1 treats
    // an unordered bulk write as ordered and reports index 0). Sending each
    // operation on its own tells which ones it refuses.
    kOneByOne,
};

BulkVerdict judge_bulk(const BulkAnswer &answer);

// What a failed createIndexes of the TTL index calls for.
enum class IndexFailure {
    kRetry,       // the database was not reached, or said "not now": try again later
    kConflict,    // an index on last_seen (or named like ours) exists with other options: change it
    kUnsupported, // the database has no TTL indexes (FerretDB v1: NotImplemented)
    kFailed,      // anything else: said once, not tried again until leveed restarts
};

// `reached`: the server answered (the error is a server error, not a network
// or server-selection one).
IndexFailure classify_index_failure(bool reached, std::int64_t code);

// `s` for a log line: bytes that are not printable ASCII as \xNN, so a value
// that is not valid UTF-8 (which is why it was refused) can still be read.
std::string printable_bytes(const std::string &s);

} // namespace levee
