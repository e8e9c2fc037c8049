#include "common/export/export_model.h"

#include "common/export/tflite_writer.h"
#include "gtest/gtest.h"
#include "tests/export/export_test_util.h"

namespace nanonas {
namespace {

TEST(ExportModelTest, WritesFileHeaderAndGraphTogether) {
  CandidateSpec s;
  s.k = 3;
  s.c = 2;
  s.input = {16, 16, 3};
  s.classes = 3;
  const Architecture arch = *BuildArchitecture(s);
  const Dataset d = testing_util::RandomImages(s.input, 200, 3, 5);
  auto m = ExportModel(arch, testing_util::RandomWeights(arch, 5), d, testing_util::Range(200), "nanonas_demo_model");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(static_cast<int64_t>(m->tflite.size()), *PredictFlashBytes(arch));
  EXPECT_EQ(*SerializeTflite(m->graph), m->tflite);
  EXPECT_NE(m->c_header.find("nanonas_demo_model_len = " + std::to_string(m->tflite.size())), std::string::npos);
  EXPECT_NE(m->c_header.find("k=3 c=2"), std::string::npos);
  nanonas::v1::Job job;
  job.set_id("j1");
  auto files = JobArtifacts(job, &*m);
  ASSERT_EQ(files.size(), 4u);
  EXPECT_EQ(files[0].first, "model.tflite");
  EXPECT_EQ(files[0].second, m->tflite);
  EXPECT_EQ(files[1].first, "model.h");
  EXPECT_EQ(files[2].first, "report.json");
  EXPECT_EQ(files[3].first, "search-path.svg");
  EXPECT_EQ(JobArtifacts(job, nullptr).size(), 2u);
  auto few = ExportModel(arch, testing_util::RandomWeights(arch, 5), d, testing_util::Range(100), "x");
  EXPECT_EQ(few.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nanonas
