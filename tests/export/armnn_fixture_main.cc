// Writes exported models and a generated test set for armnn_check.py (the independent-runtime
// test): for each case, <dir>/<name>.tflite, <name>.images (N*H*W*C uint8), <name>.expected
// (N*classes uint8: nanonas's integer inference) and one line in <dir>/cases.json.
//
//   export_armnn_fixture OUT_DIR
#include <cstdio>
#include <string>
#include <vector>

#include "common/export/inference.h"
#include "common/export/quantize.h"
#include "common/export/tflite_writer.h"
#include "nlohmann/json.hpp"
#include "tests/export/export_test_util.h"

namespace nanonas {
namespace {

struct Case {
  std::string name;
  int k, c;
  InputShape in;
  int classes;
  Variant variant;
};

int Run(const std::string& dir) {
  const std::vector<Case> cases = {
      {"v2023_k4_c2_32x32x3", 4, 2, {32, 32, 3}, 5, Variant::k2023},
      {"v2023_k6_c3_28x28x1", 6, 3, {28, 28, 1}, 10, Variant::k2023},
      {"v2024_k5_c2_32x32x3", 5, 2, {32, 32, 3}, 4, Variant::k2024},
      {"v2024_k3_c4_50x50x3", 3, 4, {50, 50, 3}, 2, Variant::k2024},
  };
  const int kImages = 200;
  nlohmann::json list = nlohmann::json::array();
  for (const Case& tc : cases) {
    CandidateSpec spec;
    spec.k = tc.k;
    spec.c = tc.c;
    spec.input = tc.in;
    spec.classes = tc.classes;
    spec.variant = tc.variant;
    absl::StatusOr<Architecture> arch = BuildArchitecture(spec);
    if (!arch.ok()) return fprintf(stderr, "%s\n", arch.status().ToString().c_str()), 1;
    const ModelWeights w = testing_util::RandomWeights(*arch, 1000 + tc.k);
    const Dataset calib = testing_util::RandomImages(tc.in, 150, tc.classes, 21);
    const Dataset test = testing_util::RandomImages(tc.in, kImages, tc.classes, 22);
    absl::StatusOr<Graph> q = QuantizeModel(*arch, w, calib, testing_util::Range(150));
    if (!q.ok()) return fprintf(stderr, "%s\n", q.status().ToString().c_str()), 1;
    absl::StatusOr<std::string> bytes = SerializeTflite(*q);
    if (!bytes.ok()) return fprintf(stderr, "%s\n", bytes.status().ToString().c_str()), 1;
    std::string expected;
    for (int i = 0; i < kImages; ++i) {
      absl::StatusOr<std::vector<uint8_t>> out = RunIntegerGraph(*q, test.image(i));
      if (!out.ok()) return fprintf(stderr, "%s\n", out.status().ToString().c_str()), 1;
      expected.append(out->begin(), out->end());
    }
    const std::string base = dir + "/" + tc.name;
    absl::Status s = WriteBinaryFile(base + ".tflite", *bytes);
    if (s.ok())
      s = WriteBinaryFile(base + ".images", std::string(test.images.begin(), test.images.end()));
    if (s.ok()) s = WriteBinaryFile(base + ".expected", expected);
    if (!s.ok()) return fprintf(stderr, "%s\n", s.ToString().c_str()), 1;
    list.push_back({{"name", tc.name},
                    {"shape", {tc.in.height, tc.in.width, tc.in.channels}},
                    {"classes", tc.classes},
                    {"images", kImages}});
  }
  if (!WriteBinaryFile(dir + "/cases.json", list.dump(1)).ok()) return 1;
  return 0;
}

}  // namespace
}  // namespace nanonas

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  return nanonas::Run(argv[1]);
}
