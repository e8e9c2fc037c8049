#include "common/export/tflite_writer.h"

#include "common/arch/mcu_model.h"
#include "common/export/inference.h"
#include "common/export/mcu_flash.h"
#include "common/export/quantize.h"
#include "common/tflite/tflite_mcu.h"
#include "common/tflite/tflite_reader.h"
#include "gtest/gtest.h"
#include "tests/export/export_test_util.h"

namespace nanonas {
namespace {

CandidateSpec Spec(int k, int c, InputShape in, int classes, Variant v) {
  CandidateSpec s;
  s.k = k;
  s.c = c;
  s.input = in;
  s.classes = classes;
  s.variant = v;
  return s;
}

Graph QuantizedModel(const Architecture& arch, uint32_t seed) {
  const Dataset d = testing_util::RandomImages(arch.spec.input, 150, arch.spec.classes, seed);
  auto g =
      QuantizeModel(arch, testing_util::RandomWeights(arch, seed), d, testing_util::Range(150));
  EXPECT_TRUE(g.ok()) << g.status();
  return *g;
}

tflite::TensorType Tfl(ElementType t) {
  switch (t) {
    case ElementType::kUint8:
      return tflite::TensorType_UINT8;
    case ElementType::kInt8:
      return tflite::TensorType_INT8;
    case ElementType::kInt32:
      return tflite::TensorType_INT32;
    case ElementType::kFloat32:
      return tflite::TensorType_FLOAT32;
  }
  return tflite::TensorType_FLOAT32;
}

// The written file parses and holds exactly the quantized graph: ops and their options, tensor
// shapes, types, quantization, constant data sizes.
TEST(ExportTfliteWriterTest, WrittenFileParsesBackToTheGraph) {
  for (Variant v : {Variant::k2023, Variant::k2024}) {
    const Architecture arch = *BuildArchitecture(Spec(4, 3, {32, 32, 3}, 5, v));
    SCOPED_TRACE(DescribeArchitecture(arch));
    const Graph g = QuantizedModel(arch, 3);
    auto bytes = SerializeTflite(g);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    auto parsed = DescribeTfliteModel(*bytes);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    SCOPED_TRACE(FormatTfliteGraph(*parsed));
    EXPECT_EQ(parsed->schema_version, 3u);
    EXPECT_EQ(parsed->num_subgraphs, 1);
    EXPECT_EQ(parsed->file_bytes, static_cast<int64_t>(bytes->size()));
    EXPECT_EQ(parsed->inputs, std::vector<int>{g.input});
    EXPECT_EQ(parsed->outputs, std::vector<int>{g.output});
    ASSERT_EQ(parsed->ops.size(), g.ops.size());
    ASSERT_EQ(parsed->tensors.size(), g.tensors.size());
    int constants = 0;
    for (size_t i = 0; i < g.tensors.size(); ++i) {
      const GraphTensor& t = g.tensors[i];
      const TfliteTensor& p = parsed->tensors[i];
      EXPECT_EQ(p.name, t.name);
      EXPECT_EQ(p.shape, t.shape) << t.name;
      EXPECT_EQ(p.type, Tfl(t.type)) << t.name;
      EXPECT_EQ(p.quantization.scale, t.quant.scale) << t.name;
      EXPECT_EQ(p.quantization.zero_point, t.quant.zero_point) << t.name;
      if (t.constant) {
        ++constants;
        EXPECT_EQ(p.constant_bytes, t.bytes()) << t.name;
        EXPECT_NE(p.buffer, 0u);
      } else {
        EXPECT_EQ(p.buffer, 0u) << t.name;  // activations use the empty sentinel buffer 0
      }
    }
    EXPECT_EQ(parsed->num_buffers, constants + 1);
    for (size_t i = 0; i < g.ops.size(); ++i) {
      const TfliteOp& p = parsed->ops[i];
      EXPECT_EQ(p.op, OpKindName(g.ops[i].kind));
      EXPECT_EQ(p.inputs, g.ops[i].inputs);
      EXPECT_EQ(p.outputs, g.ops[i].outputs);
      if (g.ops[i].kind == OpKind::kConv2D) {
        EXPECT_EQ(p.padding, "SAME");
        EXPECT_EQ(p.stride_h, 1);
        EXPECT_EQ(p.activation, "RELU");
      }
      if (g.ops[i].kind == OpKind::kMaxPool2D) {
        EXPECT_EQ(p.padding, "VALID");
        EXPECT_EQ(p.stride_w, 2);
        EXPECT_EQ(p.filter_h, 2);
      }
      if (g.ops[i].kind == OpKind::kMean) {
        EXPECT_FALSE(p.keep_dims);
      }
    }
    // The exact op sequences of mcu-memory-model.md.
    std::vector<std::string> want = {"QUANTIZE"};
    if (v == Variant::k2023) want.insert(want.end(), {"MUL", "MUL", "ADD"});
    want.push_back("CONV_2D");
    for (int i = 0; i < 3; ++i) {
      want.push_back("MAX_POOL_2D");
      if (v == Variant::k2023) want.insert(want.end(), {"MUL", "ADD"});
      want.push_back("CONV_2D");
    }
    want.insert(want.end(), {"MEAN", "FULLY_CONNECTED", "SOFTMAX", "QUANTIZE"});
    std::vector<std::string> got;
    for (const TfliteOp& op : parsed->ops) got.push_back(op.op);
    EXPECT_EQ(got, want);
  }
}

TEST(ExportTfliteWriterTest, RejectsFloatGraphs) {
  const Architecture arch = *BuildArchitecture(Spec(2, 1, {8, 8, 1}, 2, Variant::k2023));
  auto fg = BuildFloatGraph(arch, PlaceholderWeights(arch));
  ASSERT_TRUE(fg.ok());
  EXPECT_EQ(SerializeTflite(*fg).status().code(), absl::StatusCode::kInvalidArgument);
  auto q = PlaceholderQuantizedGraph(arch);
  ASSERT_TRUE(q.ok());
  q->tensors[q->ops[1].inputs[1]].data.pop_back();
  EXPECT_EQ(SerializeTflite(*q).status().code(), absl::StatusCode::kInvalidArgument);
}

// PredictFlashBytes, computed from the architecture alone, equals the size of the file written
// for trained (here: random) weights, for many shapes of both variants.
TEST(ExportTfliteWriterTest, PredictedFlashEqualsRealFileSize) {
  int checked = 0;
  for (Variant v : {Variant::k2023, Variant::k2024}) {
    for (InputShape in : {InputShape{50, 50, 3}, InputShape{28, 28, 1}, InputShape{13, 7, 3}}) {
      for (int classes : {2, 10}) {
        for (int k : {1, 3, 8, 16}) {
          for (int c = 0; c <= MaxCells(in); c += (k % 2 == 0 ? 1 : 2)) {
            const Architecture arch = *BuildArchitecture(Spec(k, c, in, classes, v));
            auto predicted = PredictFlashBytes(arch);
            ASSERT_TRUE(predicted.ok()) << predicted.status();
            // Real weights and calibration ranges (random, seeded by the shape).
            auto fg = BuildFloatGraph(arch, testing_util::RandomWeights(arch, k * 31 + c));
            ASSERT_TRUE(fg.ok());
            CalibrationRanges r;
            std::mt19937 rng(k + c);
            for (size_t t = 0; t < fg->tensors.size(); ++t) {
              r.min.push_back(-std::uniform_real_distribution<float>(0, 3)(rng));
              r.max.push_back(std::uniform_real_distribution<float>(0.1f, 50)(rng));
            }
            auto q = QuantizeGraph(*fg, r);
            ASSERT_TRUE(q.ok());
            auto bytes = SerializeTflite(*q);
            ASSERT_TRUE(bytes.ok());
            EXPECT_EQ(*predicted, static_cast<int64_t>(bytes->size()))
                << DescribeArchitecture(arch);
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 80);
  // And through the full calibration path.
  for (Variant v : {Variant::k2023, Variant::k2024}) {
    const Architecture arch = *BuildArchitecture(Spec(5, 2, {20, 20, 3}, 3, v));
    EXPECT_EQ(*PredictFlashBytes(arch),
              static_cast<int64_t>(SerializeTflite(QuantizedModel(arch, 8))->size()));
    EXPECT_EQ(ExportedFlashBytes(arch), *PredictFlashBytes(arch.spec));
  }
  EXPECT_FALSE(PredictFlashBytes(Spec(0, 1, {8, 8, 1}, 2, Variant::k2023)).ok());
}

// The exporter's figure is wired into the MCU resource model as the exact Flash figure.
TEST(ExportTfliteWriterTest, McuModelUsesExactFlash) {
  const Architecture arch = *BuildArchitecture(Spec(3, 4, {50, 50, 3}, 2, Variant::k2023));
  const McuResources r = EstimateMcuResources(arch, ExportedFlashOptions());
  EXPECT_TRUE(r.flash_exact);
  EXPECT_EQ(r.flash_bytes, *PredictFlashBytes(arch));
  // Leaner than the converter (no metadata, short names), same network.
  EXPECT_LT(r.flash_bytes, 14336);
  EXPECT_GT(r.flash_bytes, 9 * (3 * 3 + 3 * 6 + 6 * 9 + 9 * 12 + 12 * 14));
}

// The RAM figure of the exported file, computed from the parsed file by the reference-tool method,
// equals the MCU model's figure for the architecture.
TEST(ExportTfliteWriterTest, RamOfParsedFileFollowsMcuModel) {
  for (Variant v : {Variant::k2023, Variant::k2024}) {
    for (auto [k, c, in] : std::vector<std::tuple<int, int, InputShape>>{
             {3, 4, {50, 50, 3}}, {6, 2, {28, 28, 1}}, {10, 3, {32, 32, 3}}}) {
      const Architecture arch = *BuildArchitecture(Spec(k, c, in, 4, v));
      SCOPED_TRACE(DescribeArchitecture(arch));
      auto q = PlaceholderQuantizedGraph(arch);
      ASSERT_TRUE(q.ok());
      auto bytes = SerializeTflite(*q);
      ASSERT_TRUE(bytes.ok());
      auto parsed = DescribeTfliteModel(*bytes);
      ASSERT_TRUE(parsed.ok());
      auto file_res = McuResourcesOfTflite(*parsed);
      ASSERT_TRUE(file_res.ok()) << file_res.status();
      const McuResources model = EstimateMcuResources(arch, ExportedFlashOptions());
      EXPECT_EQ(file_res->arena_bytes, model.arena_bytes);
      EXPECT_EQ(file_res->persistent_bytes, model.persistent_bytes);
      EXPECT_EQ(file_res->ram_bytes, model.ram_bytes);
      EXPECT_EQ(file_res->flash_bytes, model.flash_bytes);
    }
  }
  // mcu-memory-model.md's worked example: k=3, c=4, 50x50x3 (2023) -> RAM 20992.
  const Architecture arch = *BuildArchitecture(Spec(3, 4, {50, 50, 3}, 2, Variant::k2023));
  auto parsed = DescribeTfliteModel(*SerializeTflite(*PlaceholderQuantizedGraph(arch)));
  EXPECT_EQ(McuResourcesOfTflite(*parsed)->ram_bytes, 20992);
}

}  // namespace
}  // namespace nanonas
