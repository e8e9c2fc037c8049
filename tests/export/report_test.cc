#include "common/export/report.h"

#include <regex>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace nanonas {
namespace {

namespace v1 = nanonas::v1;

v1::Candidate* AddCandidate(v1::Job* job, int seq, int k, int c, v1::CandidateState state,
                            double acc) {
  v1::Candidate* cand = job->add_candidates();
  cand->set_sequence(seq);
  cand->set_k(k);
  cand->set_c(c);
  cand->set_state(state);
  cand->set_best_validation_accuracy(acc);
  cand->set_ram_bytes(1000 * k + c);
  cand->set_flash_bytes(2000 * k + c);
  cand->set_macc(3000 * k + c);
  return cand;
}

// A path like the NanoNAS talk's: start (1,0), grow k and c, one infeasible step, stop.
v1::Job SampleJob() {
  v1::Job job;
  job.set_id("job-7");
  job.mutable_spec()->set_name("Visual <Wake> Words");
  job.mutable_spec()->mutable_constraints()->set_ram_bytes(20480);
  job.mutable_spec()->mutable_constraints()->set_flash_bytes(65536);
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  // Out of order on purpose: the report sorts by sequence.
  AddCandidate(&job, 2, 2, 1, v1::CANDIDATE_STATE_DONE, 0.81);
  AddCandidate(&job, 0, 1, 0, v1::CANDIDATE_STATE_DONE, 0.62);
  AddCandidate(&job, 1, 2, 0, v1::CANDIDATE_STATE_DONE, 0.70);
  v1::Candidate* bad = AddCandidate(&job, 3, 3, 1, v1::CANDIDATE_STATE_INFEASIBLE, 0);
  v1::Violation* v = bad->add_violations();
  v->set_resource("ram_bytes");
  v->set_value(22000);
  v->set_limit(20480);
  v->set_excess(1520);
  AddCandidate(&job, 4, 2, 2, v1::CANDIDATE_STATE_DONE, 0.79);
  v1::EpochResult* e = job.mutable_candidates(0)->add_epochs();
  e->set_epoch(1);
  e->set_validation_accuracy(0.81);
  job.mutable_result()->set_found(true);
  job.mutable_result()->set_k(2);
  job.mutable_result()->set_c(1);
  job.mutable_result()->set_validation_accuracy(0.81);
  job.mutable_result()->set_stop_reason("no neighbour improved");
  v1::FinalTraining* f = job.mutable_final_training();
  f->set_state(v1::CANDIDATE_STATE_DONE);
  f->set_best_validation_accuracy(0.86);
  f->set_has_test_accuracy(true);
  f->set_float_test_accuracy(0.85);
  f->set_quantized_test_accuracy(0.845);
  f->set_flash_bytes(9000);
  v1::Artifact* a = job.add_artifacts();
  a->set_name("model.tflite");
  a->set_size_bytes(9000);
  return job;
}

TEST(ExportReportTest, JsonHoldsTheWholePathInOrder) {
  const nlohmann::json j = nlohmann::json::parse(SearchReportJson(SampleJob()));
  EXPECT_EQ(j["job"]["id"], "job-7");
  EXPECT_EQ(j["job"]["state"], "SUCCEEDED");
  EXPECT_EQ(j["spec"]["constraints"]["ram_bytes"], 20480);
  ASSERT_EQ(j["path"].size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(j["path"][i]["sequence"], i);
  EXPECT_EQ(j["path"][0]["k"], 1);
  EXPECT_EQ(j["path"][2]["k"], 2);
  EXPECT_EQ(j["path"][2]["c"], 1);
  EXPECT_DOUBLE_EQ(j["path"][2]["best_validation_accuracy"].get<double>(), 0.81);
  EXPECT_EQ(j["path"][2]["epochs"].size(), 1u);
  EXPECT_EQ(j["path"][2]["ram_bytes"], 2001);
  EXPECT_EQ(j["path"][3]["state"], "INFEASIBLE");
  EXPECT_EQ(j["path"][3]["violations"][0]["resource"], "ram_bytes");
  EXPECT_EQ(j["path"][3]["violations"][0]["excess"], 1520);
  EXPECT_EQ(j["result"]["found"], true);
  EXPECT_EQ(j["result"]["k"], 2);
  EXPECT_EQ(j["result"]["stop_reason"], "no neighbour improved");
  EXPECT_DOUBLE_EQ(j["final_training"]["quantized_test_accuracy"].get<double>(), 0.845);
  EXPECT_EQ(j["artifacts"][0]["name"], "model.tflite");
}

TEST(ExportReportTest, JsonWithoutFinalTrainingOrTestSet) {
  v1::Job job = SampleJob();
  job.mutable_final_training()->set_has_test_accuracy(false);
  nlohmann::json j = nlohmann::json::parse(SearchReportJson(job));
  EXPECT_FALSE(j["final_training"].contains("quantized_test_accuracy"));
  job.clear_final_training();
  j = nlohmann::json::parse(SearchReportJson(job));
  EXPECT_TRUE(j["final_training"].is_null());
}

TEST(ExportReportTest, SvgDrawsGridAccuraciesArrowsAndWinner) {
  const std::string svg = SearchPathSvg(SampleJob());
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_EQ(svg.find("<script"), std::string::npos);
  // Escaped title.
  EXPECT_NE(svg.find("Visual &lt;Wake&gt; Words"), std::string::npos);
  // One node per candidate; 4 arrows for 5 steps.
  const std::regex node("<g class=\"candidate\"");
  EXPECT_EQ(
      std::distance(std::sregex_iterator(svg.begin(), svg.end(), node), std::sregex_iterator()), 5);
  const std::regex arrow("marker-end=\"url\\(#arrow\\)\"");
  EXPECT_EQ(
      std::distance(std::sregex_iterator(svg.begin(), svg.end(), arrow), std::sregex_iterator()),
      4);
  EXPECT_NE(svg.find("81.0%"), std::string::npos);
  EXPECT_NE(svg.find("62.0%"), std::string::npos);
  // The infeasible candidate is marked with the limit it broke; the winner is highlighted.
  EXPECT_NE(svg.find("data-k=\"3\" data-c=\"1\" data-state=\"INFEASIBLE\""), std::string::npos);
  EXPECT_NE(svg.find(">RAM</text>"), std::string::npos);
  EXPECT_NE(svg.find("data-k=\"2\" data-c=\"1\" data-state=\"DONE\" data-winner=\"true\""),
            std::string::npos);
  EXPECT_NE(svg.find("result (k=2, c=1)"), std::string::npos);
}

TEST(ExportReportTest, SvgOfEmptyJobIsValid) {
  v1::Job job;
  job.set_id("empty");
  const std::string svg = SearchPathSvg(job);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("no candidate fitted"), std::string::npos);
}

}  // namespace
}  // namespace nanonas
