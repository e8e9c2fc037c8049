#include "common/export/c_header.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/export/quantize.h"
#include "common/export/tflite_writer.h"
#include "gtest/gtest.h"
#include "nanonas/v1/nanonas.pb.h"

namespace nanonas {
namespace {

TEST(ExportCHeaderTest, IdentifiersAreValidC) {
  EXPECT_EQ(CIdentifier("Visual Wake-Words #2"), "visual_wake_words_2");
  EXPECT_EQ(CIdentifier("42 cats"), "m_42_cats");
  EXPECT_EQ(CIdentifier("--"), "model");
  EXPECT_EQ(CIdentifier("\xC3\xA9t\xC3\xA9"), "t");
  EXPECT_EQ(ModelArrayName("VWW", "job-1"), "nanonas_vww_model");
  EXPECT_EQ(ModelArrayName("", "0f3a-77"), "nanonas_m_0f3a_77_model");
  EXPECT_EQ(ModelArrayName("", ""), "nanonas_model");
}

std::string ExportedModel() {
  CandidateSpec s;
  s.k = 2;
  s.c = 1;
  s.input = {8, 8, 1};
  return *SerializeTflite(*PlaceholderQuantizedGraph(*BuildArchitecture(s)));
}

TEST(ExportCHeaderTest, ArrayHoldsTheModelBytesAligned) {
  const std::string model = ExportedModel();
  const std::string h = MakeCHeader(model, "nanonas_demo_model", "job demo\nk=2 c=1");
  EXPECT_NE(h.find("// job demo\n// k=2 c=1\n"), std::string::npos);
  EXPECT_NE(h.find("#ifndef NANONAS_DEMO_MODEL_H_"), std::string::npos);
  EXPECT_NE(h.find("alignas(16) const unsigned char nanonas_demo_model[] = {"), std::string::npos);
  EXPECT_NE(
      h.find("const unsigned int nanonas_demo_model_len = " + std::to_string(model.size()) + ";"),
      std::string::npos);
  // Decode the hex bytes back.
  const size_t open = h.find("= {"), close = h.find("};");
  const std::string body = h.substr(open, close - open);
  std::regex hex("0x([0-9a-f]{2})");
  std::string decoded;
  for (auto it = std::sregex_iterator(body.begin(), body.end(), hex); it != std::sregex_iterator();
       ++it) {
    decoded.push_back(static_cast<char>(std::stoi((*it)[1].str(), nullptr, 16)));
  }
  EXPECT_EQ(decoded, model);
}

// The header compiles as C++ and as C11, and the array is 16-byte aligned with the right bytes.
TEST(ExportCHeaderTest, CompilesAsCAndCpp) {
  if (std::system("c++ --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "no C++ compiler";
  const std::string model = ExportedModel();
  const std::string dir = ::testing::TempDir();
  const std::string header = dir + "/nanonas_model_test.h";
  std::ofstream(header) << MakeCHeader(model, "nanonas_test_model");
  const std::string src = dir + "/nanonas_model_test.c";
  std::ofstream(src)
      << "#include \"nanonas_model_test.h\"\n#include <stdint.h>\n"
         "int main(void) {\n"
         "  if (((uintptr_t)nanonas_test_model) % 16 != 0) return 1;\n"
         "  if (nanonas_test_model_len != "
      << model.size()
      << "u) return 2;\n"
         "  if (nanonas_test_model[4] != 'T' || nanonas_test_model[7] != '3') return 3;\n"
         "  return 0;\n}\n";
  const std::string exe = dir + "/nanonas_model_test";
  ASSERT_EQ(std::system(("c++ -x c++ -std=c++17 -Wall -Werror -o " + exe + " " + src).c_str()), 0);
  EXPECT_EQ(std::system(exe.c_str()), 0);
  if (std::system("cc --version > /dev/null 2>&1") == 0) {
    ASSERT_EQ(std::system(("cc -x c -std=c11 -Wall -Werror -o " + exe + "_c " + src).c_str()), 0);
    EXPECT_EQ(std::system((exe + "_c").c_str()), 0);
  }
}

// 16 fixed bytes standing for a .tflite file ("TFL3" at offset 4).
std::string SixteenBytes() {
  std::string b("\x1c\x00\x00\x00TFL3", 8);
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<char>(0xf0 + i));
  return b;
}

// The coordinator's model.h artifact as server/coordinator/coordinator.cc (WriteArtifacts) wrote
// it before it called ModelHeaderText, copied verbatim: ModelHeaderText must keep producing it.
std::string CoordinatorModelH(const nanonas::v1::Job& job, const std::string& tflite) {
  const nanonas::v1::SearchResult& r = job.result();
  return MakeCHeader(
      tflite, ModelArrayName(job.spec().name(), job.id()),
      absl::StrFormat(
          "nanonas job %s%s: NanoNAS %s model k=%d c=%d, %d classes, "
          "input %dx%dx%d uint8\nfull-integer uint8 TFLite model, "
          "%d bytes of Flash, %d bytes of RAM (reference-tool method)",
          job.id(),
          job.spec().name().empty() ? std::string() : absl::StrCat(" (", job.spec().name(), ")"),
          job.spec().variant(), r.k(), r.c(), job.num_classes(), job.spec().input().height(),
          job.spec().input().width(), job.spec().input().channels(), tflite.size(),
          job.final_training().ram_bytes()));
}

ModelDescription DescriptionOf(const nanonas::v1::Job& job) {
  ModelDescription d;
  d.job_id = job.id();
  d.name = job.spec().name();
  d.variant = job.spec().variant();
  d.k = job.result().k();
  d.c = job.result().c();
  d.classes = job.num_classes();
  d.input = {job.spec().input().height(), job.spec().input().width(),
             job.spec().input().channels()};
  d.ram_bytes = job.final_training().ram_bytes();
  return d;
}

TEST(ExportCHeaderTest, ModelHeaderTextIsTheCoordinatorsModelH) {
  nanonas::v1::Job job;
  job.set_id("j-1");
  job.mutable_spec()->set_name("Cats vs dogs");
  job.mutable_spec()->set_variant("2023");
  job.mutable_spec()->mutable_input()->set_height(50);
  job.mutable_spec()->mutable_input()->set_width(50);
  job.mutable_spec()->mutable_input()->set_channels(3);
  job.set_num_classes(2);
  job.mutable_result()->set_k(4);
  job.mutable_result()->set_c(2);
  job.mutable_final_training()->set_ram_bytes(12345);
  const std::string tflite = SixteenBytes();
  const std::string expected =
      "// nanonas job j-1 (Cats vs dogs): NanoNAS 2023 model k=4 c=2, 2 classes, input 50x50x3 "
      "uint8\n"
      "// full-integer uint8 TFLite model, 16 bytes of Flash, 12345 bytes of RAM (reference-tool "
      "method)\n"
      "// TensorFlow Lite model written by nanonas: 16 bytes, kept 16-byte aligned for TensorFlow "
      "Lite Micro.\n"
      "#ifndef NANONAS_CATS_VS_DOGS_MODEL_H_\n"
      "#define NANONAS_CATS_VS_DOGS_MODEL_H_\n"
      "\n"
      "#ifndef __cplusplus\n"
      "#include <stdalign.h>\n"
      "#endif\n"
      "\n"
      "alignas(16) const unsigned char nanonas_cats_vs_dogs_model[] = {\n"
      "    0x1c, 0x00, 0x00, 0x00, 0x54, 0x46, 0x4c, 0x33, 0xf0, 0xf1, 0xf2, 0xf3,\n"
      "    0xf4, 0xf5, 0xf6, 0xf7\n"
      "};\n"
      "const unsigned int nanonas_cats_vs_dogs_model_len = 16;\n"
      "\n"
      "#endif  // NANONAS_CATS_VS_DOGS_MODEL_H_\n";
  EXPECT_EQ(CoordinatorModelH(job, tflite), expected);
  EXPECT_EQ(ModelHeaderText(tflite, DescriptionOf(job)), expected);

  // An unnamed job: the array is named after the job id, no "(name)".
  job.set_id("0f3a-77");
  job.mutable_spec()->clear_name();
  job.mutable_spec()->set_variant("2024");
  const std::string unnamed = ModelHeaderText(tflite, DescriptionOf(job));
  EXPECT_EQ(unnamed, CoordinatorModelH(job, tflite));
  EXPECT_EQ(unnamed.rfind("// nanonas job 0f3a-77: NanoNAS 2024 model k=4 c=2,", 0), 0u) << unnamed;
  EXPECT_NE(unnamed.find("const unsigned char nanonas_m_0f3a_77_model[]"), std::string::npos);
}

TEST(ExportCHeaderTest, ModelHeaderTextWithoutAJobNamesTheModelOnly) {
  ModelDescription d;
  d.name = "k2_c1";
  d.variant = "2023";
  d.k = 2;
  d.c = 1;
  d.classes = 2;
  d.input = {16, 16, 3};
  d.ram_bytes = 999;
  const std::string h = ModelHeaderText(SixteenBytes(), d);
  EXPECT_EQ(h.rfind("// nanonas (k2_c1): NanoNAS 2023 model k=2 c=1, 2 classes, input 16x16x3 "
                    "uint8\n// full-integer uint8 TFLite model, 16 bytes of Flash, 999 bytes of "
                    "RAM (reference-tool method)\n",
                    0),
            0u)
      << h;
  EXPECT_NE(h.find("alignas(16) const unsigned char nanonas_k2_c1_model[] = {"), std::string::npos);
}

// A job name is free text: a CR, LF, vertical tab or trailing backslash in it must not start a
// line the preprocessor reads (model.h of a job named "x\r#define nanonas_x_model_len 0" compiled
// and reported a zero-length model before CommentText).
TEST(ExportCHeaderTest, JobNameCannotReachThePreprocessor) {
  for (const std::string& name :
       {std::string("x\r#define HIJACK 1"), std::string("x\n#define HIJACK 1"),
        std::string("x\v\f#define HIJACK 1"), std::string("x \\"), std::string("x\0y", 3)}) {
    ModelDescription d;
    d.job_id = "job-1";
    d.name = name;
    d.variant = "2023";
    d.k = 1;
    d.classes = 2;
    d.input = {8, 8, 1};
    const std::string h = ModelHeaderText(SixteenBytes(), d);
    for (char bad : {'\r', '\v', '\f', '\\', '\0'}) {
      EXPECT_EQ(h.find(bad), std::string::npos) << "name " << absl::CEscape(name);
    }
    // Every line before the guard is a comment.
    size_t pos = 0;
    while (h.compare(pos, 8, "#ifndef ") != 0) {
      ASSERT_EQ(h.compare(pos, 3, "// "), 0) << absl::CEscape(h.substr(pos, 60));
      pos = h.find('\n', pos) + 1;
    }
    EXPECT_EQ(h.find("HIJACK 1\n#"), std::string::npos);
  }
}

}  // namespace
}  // namespace nanonas
