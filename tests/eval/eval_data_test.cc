#include "worker/eval/eval_data.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nanonas {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

TEST(EvalDataTest, SourcesAreFashionMnistWithACountOrAFolder) {
  absl::StatusOr<DataSource> all = ParseDataSource("fashion-mnist");
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->fashion_mnist);
  EXPECT_EQ(all->limit, 0);
  absl::StatusOr<DataSource> some = ParseDataSource("fashion-mnist:2000");
  ASSERT_TRUE(some.ok());
  EXPECT_EQ(some->limit, 2000);
  absl::StatusOr<DataSource> folder = ParseDataSource("/data/cats");
  ASSERT_TRUE(folder.ok());
  EXPECT_FALSE(folder->fashion_mnist);
  EXPECT_EQ(folder->path, "/data/cats");
  absl::StatusOr<DataSource> test = ParseTestSource("fashion-mnist-test:10");
  ASSERT_TRUE(test.ok());
  EXPECT_TRUE(test->fashion_mnist);
  EXPECT_EQ(test->limit, 10);
}

TEST(EvalDataTest, BadCountsNameTheFlagAndTheForms) {
  EXPECT_EQ(ParseDataSource("fashion-mnist:0").status().message(),
            "--data 'fashion-mnist:0': use fashion-mnist or fashion-mnist:N with N >= 1");
  EXPECT_EQ(ParseDataSource("fashion-mnist-test").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTestSource("fashion-mnist-test:x").status().message(),
            "--test-data 'fashion-mnist-test:x': use fashion-mnist-test or fashion-mnist-test:N "
            "with N >= 1");
}

TEST(EvalDataTest, ExportDirIsCreatedOrRefused) {
  const fs::path base =
      fs::path(::testing::TempDir()) / ("nanonas_eval_data_" + std::to_string(getpid()));
  fs::remove_all(base);
  const fs::path nested = base / "a" / "b";
  EXPECT_TRUE(PrepareExportDir(nested.string()).ok());
  EXPECT_TRUE(fs::is_directory(nested));
  EXPECT_TRUE(fs::is_empty(nested));  // the write probe is gone
  const fs::path file = base / "file";
  { std::ofstream(file) << "x"; }
  const absl::Status not_dir = PrepareExportDir(file.string());
  EXPECT_EQ(not_dir.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(not_dir.message(), HasSubstr(file.string()));
  EXPECT_THAT(PrepareExportDir((file / "out").string()).message(),
              HasSubstr("cannot create the --export directory"));
  fs::remove_all(base);
}

}  // namespace
}  // namespace nanonas
