#include "common/tflite/tflite_mcu.h"

#include <string>
#include <vector>

#include "common/arch/mcu_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/mcu/reference_models.h"

namespace nanonas {
namespace {

Architecture BuildFor(const ReferenceModel& m) {
  CandidateSpec spec;
  spec.k = m.k;
  spec.c = m.c;
  spec.input = {m.height, m.width, m.input_channels};
  spec.classes = m.classes;
  absl::StatusOr<Architecture> arch = BuildArchitecture(spec);
  EXPECT_TRUE(arch.ok()) << arch.status();
  return *arch;
}

TfliteGraph Read(const ReferenceModel& m) {
  absl::StatusOr<TfliteGraph> g = ReadTfliteFile(ReferenceModelPath(m));
  EXPECT_TRUE(g.ok()) << g.status();
  return g.ok() ? *g : TfliteGraph{};
}

// The model's description of the converted graph matches each converter file op by op: names,
// every input/output shape (constants included), element types and constness, T and N.
TEST(TfliteMcuTest, GraphDescriptionMatchesTheReferenceFiles) {
  const std::string missing = MissingReferenceModels();
  ASSERT_TRUE(missing.empty()) << missing;
  for (const ReferenceModel& m : ReferenceModels()) {
    SCOPED_TRACE(m.file);
    const TfliteGraph file = Read(m);
    const McuGraph model = DescribeMcuGraph(BuildFor(m));
    ASSERT_EQ(model.num_tensors(), 8 * m.c + 18);
    ASSERT_EQ(model.num_ops(), 4 * m.c + 9);
    ASSERT_EQ(static_cast<int>(file.tensors.size()), model.num_tensors());
    ASSERT_EQ(static_cast<int>(file.ops.size()), model.num_ops())
        << "file:\n"
        << FormatTfliteGraph(file) << "model:\n"
        << FormatMcuGraph(model);
    for (int n = 0; n < model.num_ops(); ++n) {
      const TfliteOp& f = file.ops[n];
      const McuGraphOp& o = model.ops[n];
      SCOPED_TRACE("op " + std::to_string(n) + " " + o.op);
      EXPECT_EQ(f.op, o.op);
      ASSERT_EQ(f.inputs.size(), o.inputs.size());
      ASSERT_EQ(f.outputs.size(), o.outputs.size());
      for (size_t i = 0; i < o.inputs.size(); ++i) {
        const TfliteTensor& ft = file.tensors[f.inputs[i]];
        const McuTensor& mt = model.tensors[o.inputs[i]];
        EXPECT_EQ(ft.shape, mt.shape) << "input " << i;
        EXPECT_EQ(std::string(TensorTypeName(ft.type)), McuTensorTypeName(mt.type))
            << "input " << i;
        EXPECT_EQ(ft.is_constant(), mt.constant) << "input " << i;
        if (mt.constant) {
          EXPECT_EQ(ft.constant_bytes, mt.bytes()) << "input " << i;
        }
      }
      for (size_t i = 0; i < o.outputs.size(); ++i) {
        const TfliteTensor& ft = file.tensors[f.outputs[i]];
        const McuTensor& mt = model.tensors[o.outputs[i]];
        EXPECT_EQ(ft.shape, mt.shape) << "output " << i;
        EXPECT_EQ(std::string(TensorTypeName(ft.type)), McuTensorTypeName(mt.type));
      }
      if (o.op == "CONV_2D") {
        EXPECT_EQ(f.activation == "RELU", o.fused_relu);
      }
    }
    EXPECT_EQ(file.tensors[file.inputs[0]].shape, model.tensors[model.input].shape);
    EXPECT_EQ(file.tensors[file.outputs[0]].shape, model.tensors[model.output].shape);
  }
}

TEST(TfliteMcuTest, ConverterFlashEstimateIsWithin100BytesOfEachFile) {
  const std::string missing = MissingReferenceModels();
  ASSERT_TRUE(missing.empty()) << missing;
  for (const ReferenceModel& m : ReferenceModels()) {
    const TfliteGraph file = Read(m);
    ASSERT_EQ(file.file_bytes, m.flash) << m.file;
    const int64_t estimate = EstimateConverterFlashBytes(BuildFor(m));
    EXPECT_NEAR(static_cast<double>(estimate), static_cast<double>(file.file_bytes), 100.0)
        << m.file;
  }
}

// The planner and the persistent walk on the files' own graphs (converter tensor order and all)
// give the reference tool's figures too.
TEST(TfliteMcuTest, MemoryOfTheFilesOwnGraphsMatchesTheReferenceTool) {
  const std::string missing = MissingReferenceModels();
  ASSERT_TRUE(missing.empty()) << missing;
  for (const ReferenceModel& m : ReferenceModels()) {
    SCOPED_TRACE(m.file);
    const TfliteGraph file = Read(m);
    absl::StatusOr<McuGraph> g = McuGraphFromTflite(file);
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_EQ(ArenaBytes(*g), ArenaBytesLinearChain(*g));
    absl::StatusOr<McuResources> r = McuResourcesOfTflite(file);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->arena_bytes, m.arena);
    EXPECT_EQ(r->persistent_bytes, m.persistent);
    EXPECT_EQ(r->ram_bytes, m.ram);
    EXPECT_EQ(r->flash_bytes, m.flash);
    EXPECT_TRUE(r->flash_exact);
  }
}

TEST(TfliteMcuTest, UncoveredOpsAreRefused) {
  TfliteGraph g;
  g.tensors.resize(2);
  g.tensors[0].type = g.tensors[1].type = tflite::TensorType_INT8;
  g.tensors[0].shape = g.tensors[1].shape = {1, 4};
  g.inputs = {0};
  g.outputs = {1};
  TfliteOp op;
  op.op = "LOGISTIC";
  op.inputs = {0};
  op.outputs = {1};
  g.ops.push_back(op);
  absl::StatusOr<McuGraph> m = McuGraphFromTflite(g);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(m.status().message()), ::testing::HasSubstr("LOGISTIC"));
  g.ops[0].op = "SOFTMAX";
  EXPECT_TRUE(McuGraphFromTflite(g).ok());
  g.tensors[1].shape = {-1, 4};  // dynamic batch
  EXPECT_EQ(McuGraphFromTflite(g).status().code(), absl::StatusCode::kInvalidArgument);
  g.tensors[1].shape = {1, 4};
  g.tensors[1].type = tflite::TensorType_FLOAT32;
  EXPECT_EQ(McuGraphFromTflite(g).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nanonas
