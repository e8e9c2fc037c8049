#include "worker/eval/command_line.h"

#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

ABSL_FLAG(int, cl_test_count, 3, "a count for the command-line tests");
ABSL_FLAG(bool, cl_test_switch, false, "a switch for the command-line tests");
ABSL_FLAG(std::string, cl_test_name, "", "a name for the command-line tests");

namespace nanonas {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Underscored(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return UnderscoreFlagNames(static_cast<int>(argv.size()), argv.data());
}

TEST(EvalCommandLineTest, FlagNamesGetUnderscoresValuesDoNot) {
  EXPECT_THAT(
      Underscored({"tool", "--val-split=0.2", "--test-data", "my-dir", "-h", "--", "--a-b"}),
      ElementsAre("tool", "--val_split=0.2", "--test_data", "my-dir", "-h", "--", "--a-b"));
}

TEST(EvalCommandLineTest, HelpIsSeenBeforeADoubleDash) {
  EXPECT_TRUE(WantsHelp({"tool", "--k", "3", "--help"}));
  EXPECT_TRUE(WantsHelp({"tool", "-h"}));
  EXPECT_FALSE(WantsHelp({"tool", "--", "--help"}));
  EXPECT_FALSE(WantsHelp({"tool", "--helpfull"}));
}

TEST(EvalCommandLineTest, GoodCommandLineParsesValuesAndListsTheGivenFlags) {
  const CheckedCommandLine c = CheckCommandLine(
      {"tool", "--cl_test_count", "7", "--cl_test_switch", "--cl_test_name=x", "--helpon", "m"});
  EXPECT_EQ(c.error, "");
  EXPECT_THAT(c.given, ElementsAre("cl_test_count", "cl_test_switch", "cl_test_name"));
  EXPECT_EQ(absl::GetFlag(FLAGS_cl_test_count), 7);
  EXPECT_EQ(absl::GetFlag(FLAGS_cl_test_name), "x");
  EXPECT_EQ(CheckCommandLine({"tool", "--nocl_test_switch"}).error, "");
}

TEST(EvalCommandLineTest, BadCommandLinesAreDescribed) {
  EXPECT_EQ(CheckCommandLine({"tool", "--bogus"}).error, "unknown flag --bogus");
  EXPECT_THAT(CheckCommandLine({"tool", "--cl_test_count", "many"}).error,
              HasSubstr("bad value 'many' for --cl_test_count"));
  EXPECT_EQ(CheckCommandLine({"tool", "--cl_test_count"}).error,
            "flag --cl_test_count needs a value");
  EXPECT_EQ(CheckCommandLine({"tool", "stray"}).error,
            "unexpected argument 'stray' (flags start with --)");
  EXPECT_EQ(CheckCommandLine({"tool", "--", "stray"}).error, "unexpected argument 'stray'");
  EXPECT_EQ(CheckCommandLine({"tool", "--"}).error, "");
}

TEST(EvalCommandLineTest, HelpListsOnlyTheFlagsOfTheGivenFile) {
  absl::SetProgramUsageMessage("tests the command line");
  std::ostringstream out;
  PrintFlagHelp("tool", "command_line_test", out);
  EXPECT_THAT(out.str(), HasSubstr("tool: tests the command line\n\nFlags:\n"));
  EXPECT_THAT(out.str(), HasSubstr("  --cl-test-count (default: 3)\n      a count for the"));
  EXPECT_THAT(out.str(), ::testing::Not(HasSubstr("--helpfull")));
}

}  // namespace
}  // namespace nanonas
