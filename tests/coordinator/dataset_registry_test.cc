// Dataset uploads (tar via libarchive), registration of server paths, dedup, limits, decoding.
#include "server/coordinator/dataset_registry.h"

#include <archive.h>
#include <archive_entry.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <sstream>

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
                                         size_t chunk = 1000) {
    v1::UploadHeader header;
    header.set_name("test");
    header.set_format("tar");
    header.set_size_bytes(announced < 0 ? static_cast<int64_t>(bytes.size()) : announced);
    auto up = registry_->BeginUpload(header);
    if (!up.ok()) return up.status();
    for (size_t pos = 0; pos < bytes.size(); pos += chunk) {
      absl::Status st = (*up)->Append(absl::string_view(bytes).substr(pos, chunk));
      if (!st.ok()) return st;
    }
    return (*up)->Finish();
  }

  fs::path dir_;
  DatasetRegistryOptions options_;
  std::unique_ptr<DatasetRegistry> registry_;
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

TEST(DatasetRegistryNoDataDirTest, RegisterPathNeedsADataDir) {
  DatasetRegistryOptions o;
  o.state_dir = ::testing::TempDir() + "/registry-nodatadir";
  DatasetRegistry r(o);
  ASSERT_TRUE(r.Init().ok());
  EXPECT_EQ(r.RegisterPath("x").status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace nanonas::coordinator
