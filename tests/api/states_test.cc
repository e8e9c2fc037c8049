#include "common/api/states.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nanonas {
namespace {
namespace v1 = nanonas::v1;

TEST(ApiStatesTest, NamesDropTheEnumPrefix) {
  EXPECT_EQ(JobStateName(v1::JOB_STATE_RUNNING), "RUNNING");
  EXPECT_EQ(JobStateName(v1::JOB_STATE_CANCELLED), "CANCELLED");
  EXPECT_EQ(JobStateName(v1::JOB_STATE_PREPARING), "PREPARING");
  EXPECT_EQ(CandidateStateName(v1::CANDIDATE_STATE_HOST_INFEASIBLE), "HOST_INFEASIBLE");
  EXPECT_EQ(CandidateStateName(v1::CANDIDATE_STATE_DONE), "DONE");
  EXPECT_EQ(JobStateName(static_cast<v1::JobState>(99)), "UNKNOWN");
}

TEST(ApiStatesTest, ParsesJobStatesCaseInsensitively) {
  EXPECT_EQ(ParseJobState("running").value(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(ParseJobState("QUEUED").value(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(ParseJobState("Succeeded").value(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(ParseJobState("preparing").value(), v1::JOB_STATE_PREPARING);
  auto bad = ParseJobState("sleeping");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), testing::HasSubstr("not a job state"));
  EXPECT_THAT(std::string(bad.status().message()), testing::HasSubstr("preparing"));
  EXPECT_FALSE(ParseJobState("unspecified").ok());
}

TEST(ApiStatesTest, OnlyEndedJobsAreTerminal) {
  EXPECT_TRUE(IsTerminal(v1::JOB_STATE_SUCCEEDED));
  EXPECT_TRUE(IsTerminal(v1::JOB_STATE_FAILED));
  EXPECT_TRUE(IsTerminal(v1::JOB_STATE_CANCELLED));
  EXPECT_FALSE(IsTerminal(v1::JOB_STATE_QUEUED));
  EXPECT_FALSE(IsTerminal(v1::JOB_STATE_PREPARING));
  EXPECT_FALSE(IsTerminal(v1::JOB_STATE_RUNNING));
  EXPECT_FALSE(IsTerminal(v1::JOB_STATE_UNSPECIFIED));
}

TEST(ApiStatesTest, OnlySettledCandidatesAreFinal) {
  for (auto s : {v1::CANDIDATE_STATE_DONE, v1::CANDIDATE_STATE_INFEASIBLE,
                 v1::CANDIDATE_STATE_HOST_INFEASIBLE, v1::CANDIDATE_STATE_FAILED,
                 v1::CANDIDATE_STATE_CANCELLED}) {
    EXPECT_TRUE(IsFinal(s)) << CandidateStateName(s);
  }
  for (auto s : {v1::CANDIDATE_STATE_UNSPECIFIED, v1::CANDIDATE_STATE_PENDING,
                 v1::CANDIDATE_STATE_RUNNING}) {
    EXPECT_FALSE(IsFinal(s)) << CandidateStateName(s);
  }
}

}  // namespace
}  // namespace nanonas
