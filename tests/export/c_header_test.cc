#include "common/export/c_header.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>

#include "common/export/quantize.h"
#include "common/export/tflite_writer.h"
#include "gtest/gtest.h"

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
  EXPECT_NE(h.find("const unsigned int nanonas_demo_model_len = " + std::to_string(model.size()) + ";"),
            std::string::npos);
  // Decode the hex bytes back.
  const size_t open = h.find("= {"), close = h.find("};");
  const std::string body = h.substr(open, close - open);
  std::regex hex("0x([0-9a-f]{2})");
  std::string decoded;
  for (auto it = std::sregex_iterator(body.begin(), body.end(), hex); it != std::sregex_iterator(); ++it) {
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
  std::ofstream(src) << "#include \"nanonas_model_test.h\"\n#include <stdint.h>\n"
                        "int main(void) {\n"
                        "  if (((uintptr_t)nanonas_test_model) % 16 != 0) return 1;\n"
                        "  if (nanonas_test_model_len != " << model.size() << "u) return 2;\n"
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

}  // namespace
}  // namespace nanonas
