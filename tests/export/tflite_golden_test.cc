// nanonas's integer inference against outputs computed by TensorFlow Lite's reference kernels for
// the same quantized graph (see golden_model.h): equality, not closeness.
#include <vector>

#include "common/export/inference.h"
#include "gtest/gtest.h"
#include "tests/export/golden_model.h"

namespace nanonas {
namespace {

struct Golden {
  std::vector<int32_t> output;  // uint8 probabilities
  std::vector<int32_t> mean;    // int8 MEAN output
};

// Produced by tflite-micro's reference_ops::Requantize, BroadcastMul6DSlow, BroadcastAdd6DSlow,
// reference_integer_ops::ConvPerChannel, MaxPool, reference_ops::QuantizedMeanOrSum,
// reference_integer_ops::FullyConnected and reference_ops::Softmax, op by op.
const std::vector<Golden> kGolden2023 = {
    {{12, 13, 1, 231}, {-80, 70, -52, -128, -83, -43, -10, 3, -128}},
    {{12, 10, 2, 232}, {8, 62, -14, -111, -61, 72, -29, 75, -128}},
    {{115, 52, 62, 27}, {68, -21, -4, -11, 1, 95, -73, -11, -93}},
    {{117, 90, 41, 8}, {49, -54, 2, 19, 30, 25, -31, -66, -53}},
    {{155, 68, 5, 29}, {51, -1, -22, -38, -40, -79, -9, -75, -85}},
    {{37, 34, 1, 184}, {-8, 72, -56, -116, -76, -71, 7, -43, -128}},
};
const std::vector<Golden> kGolden2024 = {
    {{58, 69, 64, 65}, {-128, -124, -118, -128, -92, -117, -101, -126, -128}},
    {{41, 60, 61, 94}, {-109, -89, -123, -108, -64, -34, 6, 15, -128}},
    {{47, 59, 74, 76}, {-86, -84, -107, -75, -4, -22, -44, 24, -128}},
    {{44, 67, 69, 75}, {-128, -116, -94, -124, -13, -57, -67, -21, -128}},
    {{60, 67, 68, 61}, {-128, -128, -128, -128, -78, -128, -126, -120, -128}},
    {{61, 67, 67, 61}, {-128, -128, -128, -128, -86, -128, -128, -126, -128}},
};

void ExpectGolden(Variant v, const std::vector<Golden>& golden) {
  const Graph g = golden::QuantizedGoldenModel(v);
  ASSERT_EQ(static_cast<int>(golden.size()), golden::kImages);
  for (int i = 0; i < golden::kImages; ++i) {
    const std::vector<uint8_t> image = golden::Image(g.spec.input, i);
    std::vector<std::vector<int32_t>> raw;
    auto out = RunIntegerGraph(g, image.data(), &raw);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(std::vector<int32_t>(out->begin(), out->end()), golden[i].output) << "image " << i;
    for (const GraphOp& op : g.ops) {
      if (op.kind == OpKind::kMean) {
        EXPECT_EQ(raw[op.outputs[0]], golden[i].mean) << "image " << i;
      }
    }
  }
}

TEST(ExportTfliteGoldenTest, Variant2023MatchesTfliteReferenceKernels) {
  ExpectGolden(Variant::k2023, kGolden2023);
}

TEST(ExportTfliteGoldenTest, Variant2024MatchesTfliteReferenceKernels) {
  ExpectGolden(Variant::k2024, kGolden2024);
}

}  // namespace
}  // namespace nanonas
