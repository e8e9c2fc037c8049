#include "worker/eval/eval_data.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/base/status_macros.h"

namespace nanonas {
namespace {

// "<prefix>" or "<prefix>:N" (N >= 1), else a folder path. `flag` names the flag in errors.
absl::StatusOr<DataSource> ParseSource(const std::string& text, absl::string_view prefix,
                                       absl::string_view flag) {
  DataSource src;
  absl::string_view rest = text;
  if (absl::ConsumePrefix(&rest, prefix)) {
    src.fashion_mnist = true;
    if (rest.empty()) return src;
    if (!absl::ConsumePrefix(&rest, ":") || !absl::SimpleAtoi(rest, &src.limit) || src.limit <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " '", text, "': use ", prefix, " or ", prefix, ":N with N >= 1"));
    }
    return src;
  }
  src.path = text;
  return src;
}

// The first `limit` images of a Fashion-MNIST split (all when 0).
absl::StatusOr<Dataset> FashionMnist(bool train, int64_t limit) {
  NANONAS_ASSIGN_OR_RETURN(Dataset all, LoadFashionMnist(train));
  if (limit == 0) return all;
  if (limit > all.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(train ? "fashion-mnist:" : "fashion-mnist-test:", limit,
                     " asks for more than its ", all.size(), " images"));
  }
  std::vector<int64_t> first(static_cast<size_t>(limit));
  for (int64_t i = 0; i < limit; ++i) first[static_cast<size_t>(i)] = i;
  return Subset(all, first);
}

}  // namespace

absl::StatusOr<DataSource> ParseDataSource(const std::string& text) {
  return ParseSource(text, "fashion-mnist", "--data");
}

absl::StatusOr<DataSource> ParseTestSource(const std::string& text) {
  return ParseSource(text, "fashion-mnist-test", "--test-data");
}

absl::StatusOr<Dataset> LoadData(const DataSource& src, const std::string& input_flag,
                                 int threads) {
  if (src.fashion_mnist) {
    NANONAS_ASSIGN_OR_RETURN(Dataset all, FashionMnist(/*train=*/true, src.limit));
    if (input_flag.empty()) return all;
    NANONAS_ASSIGN_OR_RETURN(InputShape shape, ParseInputShape(input_flag));
    if (shape == all.shape) return all;
    return ResizeDataset(all, shape);
  }
  FolderOptions options;
  options.threads = threads;
  NANONAS_ASSIGN_OR_RETURN(options.size,
                           ParseInputShape(input_flag.empty() ? "50x50x3" : input_flag));
  return LoadImageFolder(src.path, options);
}

absl::StatusOr<Dataset> LoadTestData(const DataSource& src, const Dataset& train, int threads) {
  if (src.fashion_mnist) {
    NANONAS_ASSIGN_OR_RETURN(Dataset test, FashionMnist(/*train=*/false, src.limit));
    if (test.class_names != train.class_names) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the test set's classes (", absl::StrJoin(test.class_names, ", "),
          ") differ from the training set's (", absl::StrJoin(train.class_names, ", "), ")"));
    }
    if (!(test.shape == train.shape)) {
      NANONAS_ASSIGN_OR_RETURN(test, ResizeDataset(test, train.shape));
    }
    return test;
  }
  FolderOptions options;
  options.size = train.shape;
  options.threads = threads;
  options.class_names = train.class_names;  // same names, same label order, or an error
  return LoadImageFolder(src.path, options);
}

absl::Status PrepareExportDir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the --export directory ", dir, ": ", ec.message()));
  }
  if (!fs::is_directory(dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("--export ", dir, " exists and is not a directory"));
  }
  const std::string probe =
      (fs::path(dir) / absl::StrCat(".nanonas-eval-probe-", getpid())).string();
  FILE* f = std::fopen(probe.c_str(), "wb");
  if (f == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("the --export directory ", dir, " is not writable"));
  }
  std::fclose(f);
  fs::remove(probe, ec);
  return absl::OkStatus();
}

}  // namespace nanonas
