// Dataset uploads (tar via libarchive), registration of server paths, dedup, limits, decoding.
#include "server/coordinator/dataset_registry.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <sstream>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/data/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nanonas::coordinator {
namespace {

namespace fs = std::filesystem;
namespace v1 = nanonas::v1;
using ::testing::HasSubstr;

std::string PngBytes(int value) {
  cv::Mat img(8, 8, CV_8UC3, cv::Scalar(value, 255 - value, value / 2));
  std::vector<uchar> buf;
  cv::imencode(".png", img, buf);
  return std::string(buf.begin(), buf.end());
}

// A tar archive (in memory) of name -> contents.
std::string MakeTar(const std::map<std::string, std::string>& files) {
  std::vector<char> out(1 << 22);
  size_t used = 0;
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open_memory(a, out.data(), out.size(), &used);
  for (const auto& [name, data] : files) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_write_header(a, e);
    archive_write_data(a, data.data(), data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return std::string(out.data(), used);
}

std::map<std::string, std::string> TwoClasses(const std::string& root = "root/") {
  std::map<std::string, std::string> files;
  for (int i = 0; i < 3; ++i) {
    files[root + "cats/" + std::to_string(i) + ".png"] = PngBytes(10 * i);
    files[root + "dogs/" + std::to_string(i) + ".png"] = PngBytes(200 - 10 * i);
  }
  return files;
}

class DatasetRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("registry-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data");
    options_.state_dir = (dir_ / "state").string();
    options_.data_dir = (dir_ / "data").string();
    options_.max_upload_bytes = 1 << 20;
    registry_ = std::make_unique<DatasetRegistry>(options_);
    ASSERT_TRUE(registry_->Init().ok());
  }
  void TearDown() override { fs::remove_all(dir_); }

  absl::StatusOr<v1::DatasetInfo> Upload(const std::string& bytes, int64_t announced = -1,
                                         size_t chunk = 1000, const std::string& format = "tar") {
    v1::UploadHeader header;
    header.set_name("test");
    header.set_format(format);
    header.set_size_bytes(announced < 0 ? static_cast<int64_t>(bytes.size()) : announced);
    auto up = registry_->BeginUpload(header);
    if (!up.ok()) return up.status();
    for (size_t pos = 0; pos < bytes.size(); pos += chunk) {
      absl::Status st = (*up)->Append(absl::string_view(bytes).substr(pos, chunk));
      if (!st.ok()) return st;
    }
    return (*up)->Finish();
  }

  // Writes TwoClasses() as data/<name>/ and registers it.
  absl::StatusOr<v1::DatasetInfo> RegisterFolder(const std::string& name) {
    for (const auto& [file, data] : TwoClasses(name + "/")) {
      fs::create_directories((dir_ / "data" / file).parent_path());
      std::ofstream(dir_ / "data" / file, std::ios::binary) << data;
    }
    return registry_->RegisterPath(name);
  }
  fs::path DecodedDir() const { return dir_ / "state" / "datasets" / "decoded"; }
  // The names of the files (not folders) in `dir`.
  static std::vector<std::string> FilesIn(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.is_regular_file()) names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }
  static std::string ReadBytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  fs::path dir_;
  DatasetRegistryOptions options_;
  std::unique_ptr<DatasetRegistry> registry_;
};

// Records Decode's progress calls.
struct ProgressLog {
  std::vector<std::pair<int64_t, int64_t>> calls;
  DecodeProgress Fn() {
    return [this](int64_t done, int64_t total) { calls.emplace_back(done, total); };
  }
};

TEST_F(DatasetRegistryTest, UploadIsContentAddressedAndDeduplicated) {
  const std::string tar = MakeTar(TwoClasses());
  auto info = Upload(tar);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(info->id(), ::testing::StartsWith("sha256:"));
  EXPECT_EQ(info->id().size(), 7u + 64u);
  EXPECT_EQ(info->num_images(), 6);
  EXPECT_THAT(info->class_names(), ::testing::ElementsAre("cats", "dogs"));
  EXPECT_EQ(info->source(), "upload");
  auto again = Upload(tar, -1, 333);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id(), info->id());
  auto got = registry_->Get(info->id());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->num_images(), 6);
}

TEST_F(DatasetRegistryTest, ListsEveryRegisteredDatasetOnce) {
  auto empty = registry_->List();
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->empty());
  auto uploaded = Upload(MakeTar(TwoClasses()));
  ASSERT_TRUE(uploaded.ok()) << uploaded.status();
  ASSERT_TRUE(Upload(MakeTar(TwoClasses())).ok());  // the same content: still one dataset
  auto listed = registry_->List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id(), uploaded->id());
  EXPECT_EQ((*listed)[0].num_images(), 6);
  EXPECT_THAT((*listed)[0].class_names(), ::testing::ElementsAre("cats", "dogs"));
}

TEST_F(DatasetRegistryTest, DecodesAtTheJobsInputSizeForWorkers) {
  auto info = Upload(MakeTar(TwoClasses()));
  ASSERT_TRUE(info.ok()) << info.status();
  auto decoded = registry_->Decode(info->id(), InputShape{16, 16, 3});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->num_images, 6);
  EXPECT_EQ(decoded->pixel_bytes, 6 * 16 * 16 * 3);
  EXPECT_EQ(decoded->class_names.size(), 2u);
  auto path = registry_->DecodedPath(decoded->id);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_GT(fs::file_size(*path), 6u * 16 * 16 * 3);
  auto gray = registry_->Decode(info->id(), InputShape{8, 8, 1});
  ASSERT_TRUE(gray.ok());
  EXPECT_NE(gray->id, decoded->id);
  EXPECT_EQ(registry_->DecodedPath(std::string(64, '0')).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_->DecodedPath("../../etc/passwd").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(DatasetRegistryTest, OversizedUploadIsResourceExhausted) {
  std::map<std::string, std::string> files = TwoClasses();
  files["root/cats/big.png"] = std::string(2 << 20, 'x');
  const std::string tar = MakeTar(files);
  auto announced = Upload(tar);
  EXPECT_EQ(announced.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(announced.status().message()), HasSubstr("--max-upload-bytes"));
  auto unannounced = Upload(tar, /*announced=*/0);
  EXPECT_EQ(unannounced.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(DatasetRegistryTest, ArchivePathsEscapingTheRootAreRejected) {
  auto files = TwoClasses();
  files["../evil.png"] = PngBytes(1);
  auto info = Upload(MakeTar(files));
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(info.status().message()), HasSubstr("escapes the root"));
  EXPECT_FALSE(fs::exists(dir_ / "state" / "datasets" / "evil.png"));
  auto abs = TwoClasses();
  abs["/tmp/evil.png"] = PngBytes(1);
  EXPECT_EQ(Upload(MakeTar(abs)).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DatasetRegistryTest, BadUploadsSayWhatIsWrong) {
  auto garbage = Upload(std::string(5000, 'z'));
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(garbage.status().message()), HasSubstr("tar"));
  const std::string tar = MakeTar(TwoClasses());
  auto short_upload = Upload(tar, static_cast<int64_t>(tar.size()) + 10);
  EXPECT_EQ(short_upload.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(short_upload.status().message()), HasSubstr("announced"));
  v1::UploadHeader header;
  header.set_format("zip");
  EXPECT_EQ(registry_->BeginUpload(header).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DatasetRegistryTest, OneClassUploadFailsAtDecodeWithAClearMessage) {
  std::map<std::string, std::string> files;
  files["root/only/0.png"] = PngBytes(1);
  files["root/only/1.png"] = PngBytes(2);
  auto info = Upload(MakeTar(files));
  ASSERT_TRUE(info.ok()) << info.status();
  auto decoded = registry_->Decode(info->id(), InputShape{8, 8, 3});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(decoded.status().message()), HasSubstr(info->id()));
}

TEST_F(DatasetRegistryTest, RegistersFoldersUnderTheDataDirOnly) {
  for (const auto& [name, data] : TwoClasses("set1/")) {
    fs::create_directories((dir_ / "data" / name).parent_path());
    std::ofstream(dir_ / "data" / name, std::ios::binary) << data;
  }
  auto info = registry_->RegisterPath("set1");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->num_images(), 6);
  EXPECT_EQ(info->source(), "set1");
  auto again = registry_->RegisterPath("./set1/");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id(), info->id()) << "same content, same id";
  EXPECT_TRUE(registry_->Decode(info->id(), InputShape{8, 8, 3}).ok());

  EXPECT_EQ(registry_->RegisterPath("../").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->RegisterPath("/etc").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->RegisterPath("missing").status().code(), absl::StatusCode::kNotFound);
  fs::create_directory_symlink(dir_, dir_ / "data" / "link");
  auto link = registry_->RegisterPath("link");
  EXPECT_EQ(link.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(link.status().message()), HasSubstr("escapes the data dir"));
}

TEST_F(DatasetRegistryTest, UnknownAndMalformedIds) {
  EXPECT_EQ(registry_->Get("sha256:" + std::string(64, 'b')).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_->Get("nonsense").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->Get("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DatasetRegistryTest, SecondDecodeReusesTheFileWithoutDecoding) {
  auto info = RegisterFolder("set1");
  ASSERT_TRUE(info.ok()) << info.status();
  ProgressLog first;
  auto decoded = registry_->Decode(info->id(), InputShape{8, 8, 3}, first.Fn());
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_FALSE(decoded->reused);
  ASSERT_FALSE(first.calls.empty());
  EXPECT_EQ(first.calls.back(), std::make_pair(int64_t{6}, int64_t{6}));
  // Without its images the dataset could not be decoded again: the second call must reuse.
  fs::remove_all(dir_ / "data" / "set1");
  ProgressLog second;
  auto again = registry_->Decode(info->id(), InputShape{8, 8, 3}, second.Fn());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->reused);
  EXPECT_EQ(again->id, decoded->id);
  EXPECT_EQ(again->file_bytes, decoded->file_bytes);
  EXPECT_EQ(again->num_images, 6);
  EXPECT_THAT(again->class_names, ::testing::ElementsAre("cats", "dogs"));
  EXPECT_THAT(second.calls, ::testing::ElementsAre(std::make_pair(int64_t{6}, int64_t{6})));
  // Another input size has no decoded file yet.
  EXPECT_EQ(registry_->Decode(info->id(), InputShape{4, 4, 3}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(DatasetRegistryTest, ARestartedRegistryReusesTheDecodedFile) {
  auto info = RegisterFolder("set1");
  ASSERT_TRUE(info.ok()) << info.status();
  auto decoded = registry_->Decode(info->id(), InputShape{8, 8, 1});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  fs::remove_all(dir_ / "data" / "set1");
  registry_ = std::make_unique<DatasetRegistry>(options_);  // a new process over the same state
  ASSERT_TRUE(registry_->Init().ok());
  ProgressLog log;
  auto again = registry_->Decode(info->id(), InputShape{8, 8, 1}, log.Fn());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->reused);
  EXPECT_EQ(again->id, decoded->id);
  EXPECT_EQ(again->pixel_bytes, 6 * 8 * 8);
  EXPECT_THAT(log.calls, ::testing::ElementsAre(std::make_pair(int64_t{6}, int64_t{6})));
  auto path = registry_->DecodedPath(again->id);
  ASSERT_TRUE(path.ok()) << path.status();
}

TEST_F(DatasetRegistryTest, AMissingDecodedFileOrBadRecordIsDecodedAgain) {
  auto info = RegisterFolder("set1");
  ASSERT_TRUE(info.ok()) << info.status();
  auto decoded = registry_->Decode(info->id(), InputShape{8, 8, 3});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  auto path = registry_->DecodedPath(decoded->id);
  ASSERT_TRUE(path.ok());
  fs::remove(*path);
  auto redone = registry_->Decode(info->id(), InputShape{8, 8, 3});
  ASSERT_TRUE(redone.ok()) << redone.status();
  EXPECT_FALSE(redone->reused);
  EXPECT_EQ(redone->id, decoded->id);
  EXPECT_TRUE(fs::exists(*path));
  const std::vector<std::string> records = FilesIn(DecodedDir() / "index");
  ASSERT_EQ(records.size(), 1u);
  std::ofstream(DecodedDir() / "index" / records[0], std::ios::trunc) << "garbage";
  registry_ = std::make_unique<DatasetRegistry>(options_);
  ASSERT_TRUE(registry_->Init().ok());
  auto after_bad_record = registry_->Decode(info->id(), InputShape{8, 8, 3});
  ASSERT_TRUE(after_bad_record.ok()) << after_bad_record.status();
  EXPECT_FALSE(after_bad_record->reused);
  EXPECT_EQ(after_bad_record->id, decoded->id);
}

TEST_F(DatasetRegistryTest, ConcurrentDecodesOfOneKeyDecodeOnce) {
  auto info = RegisterFolder("set1");
  ASSERT_TRUE(info.ok()) << info.status();
  absl::Notification second_waits;
  DatasetRegistryOptions options = options_;
  options.on_coalesced_decode = [&] { second_waits.Notify(); };
  DatasetRegistry registry(options);
  ASSERT_TRUE(registry.Init().ok());
  absl::Notification first_decoding;
  bool second_waited = false;
  absl::StatusOr<DecodedDataset> first, second;
  ProgressLog second_log;
  std::thread a([&] {
    first = registry.Decode(info->id(), InputShape{8, 8, 3}, [&](int64_t, int64_t) {
      first_decoding.Notify();
      // Holds the decode open until the second call waits for it (a guard against a hang,
      // not a timing assertion: the test fails below if the second call never waited).
      second_waited = second_waits.WaitForNotificationWithTimeout(absl::Seconds(60));
    });
  });
  first_decoding.WaitForNotification();
  std::thread b([&] {
    second = registry.Decode(info->id(), InputShape{8, 8, 3}, second_log.Fn());
  });
  a.join();
  b.join();
  EXPECT_TRUE(second_waited);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(first->reused);
  EXPECT_TRUE(second->reused) << "the second call decoded too";
  EXPECT_EQ(second->id, first->id);
  EXPECT_THAT(second_log.calls, ::testing::ElementsAre(std::make_pair(int64_t{6}, int64_t{6})));
}

TEST_F(DatasetRegistryTest, CorruptLateImageFailsNamingItAndLeavesNoFile) {
  auto files = TwoClasses("set1/");
  files["set1/dogs/zz.png"] = "this is not a png";
  for (const auto& [name, data] : files) {
    fs::create_directories((dir_ / "data" / name).parent_path());
    std::ofstream(dir_ / "data" / name, std::ios::binary) << data;
  }
  options_.decode_threads = 3;
  registry_ = std::make_unique<DatasetRegistry>(options_);
  ASSERT_TRUE(registry_->Init().ok());
  auto info = registry_->RegisterPath("set1");
  ASSERT_TRUE(info.ok()) << info.status();
  auto decoded = registry_->Decode(info->id(), InputShape{8, 8, 3});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(decoded.status().message()),
              ::testing::StartsWith("dataset " + info->id() + ": "));
  EXPECT_THAT(std::string(decoded.status().message()), HasSubstr("dogs/zz.png"));
  EXPECT_THAT(FilesIn(DecodedDir()), ::testing::IsEmpty());
  EXPECT_THAT(FilesIn(DecodedDir() / "index"), ::testing::IsEmpty());
}

TEST_F(DatasetRegistryTest, InitRemovesWhatAKilledProcessLeft) {
  const std::string kept = std::string(64, 'a') + ".nnds";
  std::ofstream(DecodedDir() / kept) << "a finished decode";
  std::ofstream(DecodedDir() / "index" / (std::string(64, 'b') + "@8x8x3")) << "r";
  std::ofstream(DecodedDir() / "pending-12-0.nnds") << "renamed pack, not yet its hash";
  std::ofstream(DecodedDir() / "pending-12-1.nnds.tmp-99-0") << "half-written pack";
  std::ofstream(DecodedDir() / "index" / "x@8x8x3.tmp-12-2") << "half-written record";
  fs::create_directories(dir_ / "state" / "datasets" / "tmp" / "tree-1" / "cats");
  std::ofstream(dir_ / "state" / "datasets" / "tmp" / "upload-1") << "partial upload";
  registry_ = std::make_unique<DatasetRegistry>(options_);
  ASSERT_TRUE(registry_->Init().ok());
  EXPECT_THAT(FilesIn(DecodedDir()), ::testing::ElementsAre(kept));
  EXPECT_THAT(FilesIn(DecodedDir() / "index"),
              ::testing::ElementsAre(std::string(64, 'b') + "@8x8x3"));
  EXPECT_TRUE(fs::is_empty(dir_ / "state" / "datasets" / "tmp"));
}

TEST_F(DatasetRegistryTest, UploadedDatasetFileIsResizedByStreaming) {
  Dataset data;
  data.shape = {12, 12, 3};
  data.class_names = {"no", "yes"};
  for (int i = 0; i < 5; ++i) data.labels.push_back(i % 2);
  data.images.resize(5 * 12 * 12 * 3);
  for (size_t i = 0; i < data.images.size(); ++i) data.images[i] = static_cast<uint8_t>(i * 7);
  auto info = Upload(SerializeDataset(data), -1, 1000, "nnds");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->num_images(), 5);
  EXPECT_THAT(info->class_names(), ::testing::ElementsAre("no", "yes"));
  auto decoded = registry_->Decode(info->id(), InputShape{6, 6, 1});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  auto expected = ResizeDataset(data, InputShape{6, 6, 1});
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(decoded->id, "sha256:" + ContentHash(*expected));
  auto path = registry_->DecodedPath(decoded->id);
  ASSERT_TRUE(path.ok());
  EXPECT_TRUE(ReadBytes(*path) == SerializeDataset(*expected));

  std::string corrupt = SerializeDataset(data);
  corrupt[corrupt.size() - 20] ^= 1;
  auto bad = Upload(corrupt, -1, 1000, "nnds");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("not a valid nanonas dataset"));
}

TEST(DatasetRegistryNoDataDirTest, RegisterPathNeedsADataDir) {
  DatasetRegistryOptions o;
  o.state_dir = ::testing::TempDir() + "/registry-nodatadir";
  DatasetRegistry r(o);
  ASSERT_TRUE(r.Init().ok());
  EXPECT_EQ(r.RegisterPath("x").status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace nanonas::coordinator
