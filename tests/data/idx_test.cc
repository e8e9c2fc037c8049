// LoadIdx on small IDX files the tests write (plain and gzipped), and the real Fashion-MNIST.
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "common/data/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nanonas {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Be32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }

// IDX images: magic 0x00000803, N, H, W, pixels.
std::string IdxImages(uint32_t n, uint32_t h, uint32_t w) {
  std::string s = Be32(0x00000803) + Be32(n) + Be32(h) + Be32(w);
  for (uint32_t i = 0; i < n * h * w; ++i) s.push_back(char(i % 251));
  return s;
}
std::string IdxLabels(const std::vector<uint8_t>& labels) {
  std::string s = Be32(0x00000801) + Be32(static_cast<uint32_t>(labels.size()));
  for (uint8_t l : labels) s.push_back(char(l));
  return s;
}

class IdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) / (std::string("nanonas_idx_") + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Plain(const std::string& name, const std::string& bytes) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p.string();
  }
  std::string Gz(const std::string& name, const std::string& bytes) {
    const fs::path p = dir_ / name;
    gzFile f = gzopen(p.c_str(), "wb");
    EXPECT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
              static_cast<int>(bytes.size()));
    gzclose(f);
    return p.string();
  }
  fs::path dir_;
};

TEST_F(IdxTest, LoadsPlainAndGzippedFiles) {
  const std::string images = IdxImages(3, 4, 5);
  const std::string labels = IdxLabels({2, 0, 9});
  for (bool gz : {false, true}) {
    SCOPED_TRACE(gz ? "gzip" : "plain");
    const std::string ip = gz ? Gz("i.gz", images) : Plain("i", images);
    const std::string lp = gz ? Gz("l.gz", labels) : Plain("l", labels);
    absl::StatusOr<Dataset> ds = LoadIdx(ip, lp);
    ASSERT_TRUE(ds.ok()) << ds.status();
    EXPECT_EQ(ds->shape, (InputShape{4, 5, 1}));
    EXPECT_THAT(ds->labels, ElementsAre(2, 0, 9));
    EXPECT_EQ(ds->num_classes(), 10);
    EXPECT_EQ(ds->class_names[9], "9");
    ASSERT_EQ(ds->images.size(), 60u);
    EXPECT_EQ(ds->image(1)[0], 20);  // pixel i holds i % 251
    EXPECT_EQ(ds->images[59], 59);
  }
}

TEST_F(IdxTest, UsesGivenClassNamesAndChecksLabelsAgainstThem) {
  const std::string ip = Plain("i", IdxImages(2, 2, 2));
  absl::StatusOr<Dataset> ds = LoadIdx(ip, Plain("l", IdxLabels({1, 0})), {"no", "yes"});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_THAT(ds->class_names, ElementsAre("no", "yes"));
  ds = LoadIdx(ip, Plain("l2", IdxLabels({1, 2})), {"no", "yes"});
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("label 2 at index 1"));
}

TEST_F(IdxTest, RejectsBadMagicNumbers) {
  const std::string lp = Plain("l", IdxLabels({0}));
  std::string images = IdxImages(1, 2, 2);
  images[0] = 1;
  absl::StatusOr<Dataset> ds = LoadIdx(Plain("bad_magic", images), lp);
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("bad magic"));
  images = IdxImages(1, 2, 2);
  images[2] = 0x0D;  // float data
  ds = LoadIdx(Plain("float", images), lp);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("only unsigned bytes"));
  // Labels file given as images: 1 dimension where 3 are expected.
  ds = LoadIdx(lp, lp);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("1 dimensions, expected 3"));
}

TEST_F(IdxTest, RejectsSizeMismatches) {
  const std::string images = IdxImages(3, 2, 2);
  const std::string lp = Plain("l", IdxLabels({0, 1, 2}));
  absl::StatusOr<Dataset> ds = LoadIdx(Plain("cut", images.substr(0, images.size() - 1)), lp);
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("truncated"));
  ds = LoadIdx(Gz("cut.gz", images.substr(0, 10)), lp);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("truncated"));
  ds = LoadIdx(Plain("long", images + "x"), lp);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("longer than its dimensions"));
  ds = LoadIdx(Plain("i", images), Plain("l2", IdxLabels({0, 1})));
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("hold 3 images but labels"));
  ds = LoadIdx(Plain("zero", Be32(0x803) + Be32(0) + Be32(2) + Be32(2)), lp);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("dimension 0 of size 0"));
  // 2^31 x 2^31 x 2^31 bytes declared: refused before allocating.
  ds = LoadIdx(Plain("huge", Be32(0x803) + Be32(1u << 31) + Be32(1u << 31) + Be32(1u << 31)), lp);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("declares more than"));
}

TEST_F(IdxTest, RejectsCorruptGzipAndMissingFiles) {
  std::string gz;
  {
    const std::string p = Gz("i.gz", IdxImages(50, 8, 8));
    std::ifstream in(p, std::ios::binary);
    gz.assign(std::istreambuf_iterator<char>(in), {});
  }
  for (size_t i = 20; i < gz.size() - 8; ++i) gz[i] = char(gz[i] ^ 0x5A);
  const std::string lp = Plain("l", IdxLabels(std::vector<uint8_t>(50, 0)));
  absl::StatusOr<Dataset> ds = LoadIdx(Plain("bad.gz", gz), lp);
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  ds = LoadIdx((dir_ / "missing").string(), lp);
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("missing"));
  EXPECT_EQ(LoadFashionMnist(true, (dir_ / "nowhere").string()).status().code(),
            absl::StatusCode::kNotFound);
}

// The Debian package dataset-fashion-mnist is installed by scripts/setup.sh.
TEST(FashionMnistTest, LoadsTheDebianPackage) {
  absl::StatusOr<Dataset> test = LoadFashionMnist(false);
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ(test->size(), 10000);
  EXPECT_EQ(test->shape, (InputShape{28, 28, 1}));
  EXPECT_EQ(test->images.size(), 10000u * 28 * 28);
  EXPECT_EQ(test->class_names.front(), "T-shirt/top");
  EXPECT_EQ(test->class_names.back(), "Ankle boot");
  std::vector<int> counts(10, 0);
  for (int32_t l : test->labels) ++counts.at(l);
  for (int c : counts) EXPECT_EQ(c, 1000);  // the test set is balanced
  EXPECT_EQ(test->labels[0], 9);            // the first test image is an ankle boot

  absl::StatusOr<Dataset> train = LoadFashionMnist(true);
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->size(), 60000);
  EXPECT_EQ(train->labels[0], 9);
}

}  // namespace
}  // namespace nanonas
