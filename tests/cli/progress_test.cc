// The progress texts of `nanonas submit`: transfer figures (units, rate, ETA), the preparation
// line and its milestones, and the in-place redraw.
#include "client/progress.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nanonas {
namespace {

namespace v1 = nanonas::v1;

TEST(ProgressTest, ThousandsAreGroupedByThree) {
  EXPECT_EQ(FormatThousands(0), "0");
  EXPECT_EQ(FormatThousands(999), "999");
  EXPECT_EQ(FormatThousands(4100), "4,100");
  EXPECT_EQ(FormatThousands(115000), "115,000");
  EXPECT_EQ(FormatThousands(1234567), "1,234,567");
  EXPECT_EQ(FormatThousands(-45000), "-45,000");
}

TEST(ProgressTest, TransferShowsBytesPercentRateAndEta) {
  const int64_t mib = 1 << 20;
  // 118 MiB of 472 MiB in 2 s: 59 MiB/s, 354 MiB left: 6 s.
  EXPECT_EQ(FormatTransferProgress(118 * mib, 472 * mib, 2.0),
            "118.0 MiB / 472.0 MiB (25%), 59.0 MiB/s, ETA 6s");
  // Minutes, and small units.
  EXPECT_EQ(FormatTransferProgress(512 * 1024, 100 * mib, 1.0),
            "512.0 KiB / 100.0 MiB (0%), 512.0 KiB/s, ETA 3m19s");
  EXPECT_EQ(FormatTransferProgress(100, 1000, 0), "100 B / 1000 B (10%)");  // nothing measured
  EXPECT_EQ(FormatTransferProgress(0, 3LL << 30, 1), "0 B / 3.00 GiB (0%)");
  EXPECT_EQ(FormatTransferProgress(3 * mib, 0, 1), "3.0 MiB, 3.0 MiB/s");  // total unknown
  EXPECT_EQ(FormatTransferProgress(472 * mib, 472 * mib, 8),
            "472.0 MiB / 472.0 MiB (100%), 59.0 MiB/s, ETA 0s");
  EXPECT_EQ(FormatTransferSummary(472 * mib, 8), "472.0 MiB in 8.0s (59.0 MiB/s)");
  EXPECT_EQ(FormatTransferSummary(10, 0), "10 B in 0.0s");
}

v1::Preparation Prep(int64_t done, int64_t total, double seconds) {
  v1::Preparation p;
  p.set_dataset_id("sha256:abc");
  p.set_images_done(done);
  p.set_images_total(total);
  p.set_seconds(seconds);
  return p;
}

TEST(ProgressTest, PreparationShowsImagesRateAndEta) {
  // 45,000 of 115,000 in 11 s: 4,091 images/s; 70,000 left: 17 s.
  EXPECT_EQ(FormatPreparation(Prep(45000, 115000, 11), "vww"),
            "preparing vww: 45,000/115,000 images (39%), 4,091 images/s, ETA 17s");
  EXPECT_EQ(FormatPreparation(Prep(0, 115000, 0), ""),
            "preparing the dataset: 0/115,000 images (0%)");
  v1::Preparation test = Prep(30, 60, 1);
  test.set_test_set(true);
  EXPECT_EQ(FormatPreparation(test, "vww"),
            "preparing the test set vww: 30/60 images (50%), 30 images/s, ETA 1s");
  v1::Preparation reused = Prep(0, 115000, 0);
  reused.set_reused(true);
  EXPECT_EQ(FormatPreparation(reused, "vww"), "preparing vww: dataset already prepared");
  EXPECT_EQ(FormatPreparationSummary(reused, "vww"), "vww: dataset already prepared");
  EXPECT_EQ(FormatPreparationSummary(Prep(115000, 115000, 28), "vww"),
            "prepared vww: 115,000 images in 28s");
}

TEST(ProgressTest, PreparationMilestonesAreTenths) {
  EXPECT_EQ(PreparationDecile(Prep(0, 115000, 0)), 0);
  EXPECT_EQ(PreparationDecile(Prep(11499, 115000, 1)), 0);
  EXPECT_EQ(PreparationDecile(Prep(11500, 115000, 1)), 1);
  EXPECT_EQ(PreparationDecile(Prep(45000, 115000, 1)), 3);
  EXPECT_EQ(PreparationDecile(Prep(115000, 115000, 1)), 10);
  EXPECT_EQ(PreparationDecile(Prep(5, 0, 1)), 0);
}

TEST(ProgressTest, TheLineIsRedrawnInPlaceAndEndedOnce) {
  EXPECT_EQ(InPlaceLine("50%"), "\r50%\033[K");
  std::ostringstream out;
  ProgressLine line(out, std::chrono::hours(1));
  line.Draw("one");
  line.Draw("two");  // within the interval: skipped
  line.Draw("three", /*force=*/true);
  line.Finish("done");
  EXPECT_EQ(out.str(), "\rone\033[K\rthree\033[K\rdone\033[K\n");
  std::ostringstream quiet;
  ProgressLine never(quiet, std::chrono::milliseconds(1));
  never.Finish("");
  EXPECT_EQ(quiet.str(), "");
}

}  // namespace
}  // namespace nanonas
