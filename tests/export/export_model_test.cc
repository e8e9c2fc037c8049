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
  auto few = ExportModel(arch, testing_util::RandomWeights(arch, 5), d, testing_util::Range(100), "x");
  EXPECT_EQ(few.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nanonas
