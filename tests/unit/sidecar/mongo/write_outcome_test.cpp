#include "write_outcome.hpp"

#include <gtest/gtest.h>


using namespace levee;

namespace {

BulkAnswer answer(std::size_t ops, std::int64_t applied, std::vector<WriteError> errors) {
    BulkAnswer a;
    a.operations = ops;
    a.applied = applied;
    a.write_errors = std::move(errors);
    return a;
}

} // namespace

TEST(JudgeBulk, PermanentRefusalsWithTheRestAppliedSettleTheBatch) {
    EXPECT_EQ(judge_bulk(answer(3, 2, {{1, 11000, "duplicate key"}})), BulkVerdict::kSettled);
    EXPECT_EQ(judge_bulk(answer(2, 0, {{0, 121, "validation"}, {1, 2, "bad value"}})), BulkVerdict::kSettled);
}

TEST(JudgeBulk, UnansweredOperationsWithoutARefusalMeanSendAgain) {
    // a network error or a command refused whole
    EXPECT_EQ(judge_bulk(answer(3, 1, {})), BulkVerdict::kRetry);
    EXPECT_EQ(judge_bulk(answer(3, 0, {})), BulkVerdict::kRetry);
}

TEST(JudgeBulk, RefusalsThatDoNotAddUpAreSortedOutOneByOne) {
    // FerretDB v1: stops at the refusal, says index 0, gives no counts
    EXPECT_EQ(judge_bulk(answer(3, 0, {{0, 11000, "duplicate key"}})), BulkVerdict::kOneByOne);
    EXPECT_EQ(judge_bulk(answer(2, 1, {{2, 11000, "dup"}})), BulkVerdict::kOneByOne); // index outside the batch
}

TEST(JudgeBulk, TransientErrorsMeanSendAgain) {
    EXPECT_EQ(judge_bulk(answer(2, 1, {{0, 10107, "not primary"}})), BulkVerdict::kRetry);
    EXPECT_EQ(judge_bulk(answer(2, 0, {{0, 11000, "dup"}, {1, 13388, "stale config"}})), BulkVerdict::kRetry);
    BulkAnswer wc = answer(2, 1, {{0, 11000, "dup"}});
    wc.write_concern_error = true;
    EXPECT_EQ(judge_bulk(wc), BulkVerdict::kRetry);
    BulkAnswer labelled = answer(2, 1, {{0, 11000, "dup"}});
    labelled.retryable_label = true;
    EXPECT_EQ(judge_bulk(labelled), BulkVerdict::kRetry);
}

TEST(IndexFailure, ClassifiesTheAnswers) {
    EXPECT_EQ(classify_index_failure(false, 0), IndexFailure::kRetry);
    EXPECT_EQ(classify_index_failure(true, 10107), IndexFailure::kRetry);
    EXPECT_EQ(classify_index_failure(true, 85), IndexFailure::kConflict);
    EXPECT_EQ(classify_index_failure(true, 86), IndexFailure::kConflict);
    EXPECT_EQ(classify_index_failure(true, 238), IndexFailure::kUnsupported);
    EXPECT_EQ(classify_index_failure(true, 115), IndexFailure::kUnsupported);
    EXPECT_EQ(classify_index_failure(true, 13), IndexFailure::kFailed);
}

TEST(PrintableBytes, EscapesWhatIsNotPrintableAscii) {
    EXPECT_EQ(printable_bytes("alice"), "alice");
    EXPECT_EQ(printable_bytes(std::string("a\xff\x01z")), "a\\xff\\x01z");
    EXPECT_EQ(printable_bytes("a\\b"), "a\\x5cb");
}
