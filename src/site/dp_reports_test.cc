#include "site/dp_reports.h"

#include <gtest/gtest.h>

namespace depot::site {
namespace {

using S = RecordState;
using E = RecordEvent;

TEST(RecordStateTest, OnlyAVerifiedReadyEndsAWithholding) {
  EXPECT_EQ(RecordNext(S::kReady, E::kAgentReported), S::kVerifying);
  // While verifying, nothing but a ready that answers the request moves the record.
  EXPECT_EQ(RecordNext(S::kVerifying, E::kDpReadyUnasked), std::nullopt);
  EXPECT_EQ(RecordNext(S::kVerifying, E::kDpSyncing), std::nullopt);
  EXPECT_EQ(RecordNext(S::kVerifying, E::kDpFailed), std::nullopt);
  EXPECT_EQ(RecordNext(S::kVerifying, E::kAgentReported), S::kVerifying);
  EXPECT_EQ(RecordNext(S::kVerifying, E::kDpReady), S::kReady);
}

TEST(RecordStateTest, AgentsCannotMoveRecordsThatAreNotInPolicies) {
  for (S s : {S::kPending, S::kSyncing, S::kFailed}) {
    EXPECT_EQ(RecordNext(s, E::kAgentReported), std::nullopt) << RecordStateName(s);
  }
}

TEST(RecordStateTest, TheDpDrivesTheOrdinaryLifeOfACopy) {
  EXPECT_EQ(RecordNext(S::kPending, E::kDpSyncing), S::kSyncing);
  EXPECT_EQ(RecordNext(S::kSyncing, E::kDpReady), S::kReady);
  EXPECT_EQ(RecordNext(S::kSyncing, E::kDpFailed), S::kFailed);
  EXPECT_EQ(RecordNext(S::kFailed, E::kDpSyncing), S::kSyncing);
  EXPECT_EQ(RecordNext(S::kFailed, E::kDpReady), S::kReady);
  EXPECT_EQ(RecordNext(S::kReady, E::kDpSyncing), S::kSyncing);  // a scrub found damage
  EXPECT_EQ(RecordNext(S::kReady, E::kDpReady), std::nullopt);
}

TEST(RecordStateTest, NamesRoundTrip) {
  for (S s : {S::kPending, S::kSyncing, S::kReady, S::kFailed, S::kVerifying}) {
    EXPECT_EQ(ParseRecordState(RecordStateName(s)), s);
  }
  EXPECT_EQ(ParseRecordState("withheld"), std::nullopt);
}

}  // namespace
}  // namespace depot::site
