// nanonas-make-standin: writes a Visual-Wake-Words-sized stand-in dataset built from Fashion-MNIST
// (the Debian package dataset-fashion-mnist), for bench/vww.sh.
//
//   nanonas-make-standin --out DIR [--count 115000] [--test-count N] [--seed 1] [--threads N]
//                        [--source /usr/share/datasets/fashion-mnist]
//
// Output: DIR/train/<class>/NNNNNN.png (count images) and DIR/test/<class>/NNNNNN.png (test-count
// images, default count / 10 capped at 10,000, from the t10k images), 50x50 RGB PNGs, two classes
// like VWW: "person" (Fashion-MNIST's upper-body clothes: T-shirt/top, pullover, dress, coat,
// shirt) and "not_person" (trouser, sandal, sneaker, bag, ankle boot). Image i comes from source
// image i mod N_source; every image is resized 28->50 (bilinear), then shifted (up to +-5 px),
// flipped left-right (half of them), scaled in brightness (0.6-1.4) and tinted into 3 channels
// over a tinted background; the first pass over the source is transformed too, so no two files
// are the same. Each image draws from its own std::mt19937_64 seeded from (seed, split, i), so the
// output is identical for any thread count. DIR/standin.json records the parameters last, once
// every file is written (bench/vww.sh regenerates when it is missing or differs).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/data/dataset.h"

namespace {

constexpr int kSize = 50;
constexpr const char* kClassNames[2] = {"not_person", "person"};

// Fashion-MNIST label -> stand-in class (1 = person-like: clothes worn on the upper body).
int StandinClass(int label) {
  return label == 0 || label == 2 || label == 3 || label == 4 || label == 6 ? 1 : 0;
}

struct Options {
  std::string out;
  std::string source = "/usr/share/datasets/fashion-mnist";
  int64_t count = 115000;
  int64_t test_count = -1;  // default: min(count / 10, 10000), at least 2
  uint64_t seed = 1;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
};

// One 50x50x3 BGR image (OpenCV's order for imwrite) from a 28x28 grey source image.
cv::Mat Transform(const uint8_t* src28, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  cv::Mat grey(28, 28, CV_8UC1, const_cast<uint8_t*>(src28));
  cv::Mat big;
  cv::resize(grey, big, cv::Size(kSize, kSize), 0, 0, cv::INTER_LINEAR);
  const double dx = std::floor(u(rng) * 11) - 5, dy = std::floor(u(rng) * 11) - 5;
  const bool flip = u(rng) < 0.5;
  cv::Mat m = (cv::Mat_<double>(2, 3) << (flip ? -1 : 1), 0, (flip ? kSize - 1 : 0) + dx, 0, 1, dy);
  cv::Mat moved;
  cv::warpAffine(big, moved, m, big.size(), cv::INTER_NEAREST, cv::BORDER_CONSTANT, 0);
  const double brightness = 0.6 + 0.8 * u(rng);
  double tint[3], background[3];
  for (int ch = 0; ch < 3; ++ch) tint[ch] = 0.55 + 0.45 * u(rng);
  for (int ch = 0; ch < 3; ++ch) background[ch] = 60.0 * u(rng);
  cv::Mat out(kSize, kSize, CV_8UC3);
  for (int y = 0; y < kSize; ++y) {
    const uint8_t* in = moved.ptr<uint8_t>(y);
    uint8_t* o = out.ptr<uint8_t>(y);
    for (int x = 0; x < kSize; ++x) {
      const double v = in[x] / 255.0;
      for (int ch = 0; ch < 3; ++ch) {
        const double p = background[ch] * (1.0 - v) + 255.0 * v * tint[ch] * brightness;
        o[3 * x + ch] = static_cast<uint8_t>(std::clamp(p, 0.0, 255.0) + 0.5);  // <= 255.5
      }
    }
  }
  return out;
}

// Writes `count` images of `source` under root/<class>/ on `threads` threads. False on an error
// (printed).
bool WriteSplit(const nanonas::Dataset& source, const std::string& root, int64_t count,
                uint64_t seed, uint64_t split, int threads) {
  for (const char* name : kClassNames) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(root) / name, ec);
    if (ec) {
      std::fprintf(stderr, "nanonas-make-standin: cannot create %s/%s: %s\n", root.c_str(), name,
                   ec.message().c_str());
      return false;
    }
  }
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  const std::vector<int> png_params = {cv::IMWRITE_PNG_COMPRESSION, 1};
  auto work = [&]() {
    while (!failed.load()) {
      const int64_t i = next.fetch_add(1);
      if (i >= count) return;
      const int64_t s = i % source.size();
      std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                        static_cast<uint32_t>(split), static_cast<uint32_t>(i),
                        static_cast<uint32_t>(i >> 32)};
      std::mt19937_64 rng(seq);
      const cv::Mat img = Transform(source.image(s), rng);
      char file[32];
      std::snprintf(file, sizeof(file), "%06lld.png", static_cast<long long>(i));
      const std::string path =
          absl::StrCat(root, "/", kClassNames[StandinClass(source.labels[s])], "/", file);
      if (!cv::imwrite(path, img, png_params)) {
        std::fprintf(stderr, "nanonas-make-standin: cannot write %s\n", path.c_str());
        failed = true;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(work);
  for (auto& t : pool) t.join();
  return !failed.load();
}

int Usage(const char* why) {
  if (why != nullptr) std::fprintf(stderr, "nanonas-make-standin: %s\n", why);
  std::fprintf(stderr,
               "usage: nanonas-make-standin --out DIR [--count N (115000)] [--test-count N]\n"
               "       [--seed N (1)] [--threads N (cores)] [--source FASHION_MNIST_DIR]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") return Usage(nullptr);
    if (i + 1 >= argc) return Usage(("missing value after " + a).c_str());
    const std::string v = argv[++i];
    bool ok = true;
    if (a == "--out") {
      o.out = v;
    } else if (a == "--source") {
      o.source = v;
    } else if (a == "--count") {
      ok = absl::SimpleAtoi(v, &o.count) && o.count >= 2;
    } else if (a == "--test-count") {
      ok = absl::SimpleAtoi(v, &o.test_count) && o.test_count >= 2;
    } else if (a == "--seed") {
      ok = absl::SimpleAtoi(v, &o.seed);
    } else if (a == "--threads") {
      ok = absl::SimpleAtoi(v, &o.threads) && o.threads >= 1;
    } else {
      return Usage(("unknown flag " + a).c_str());
    }
    if (!ok) return Usage(("bad value for " + a + ": " + v).c_str());
  }
  if (o.out.empty()) return Usage("--out DIR is required");
  if (o.test_count < 0) o.test_count = std::max<int64_t>(2, std::min<int64_t>(o.count / 10, 10000));

  const auto start = std::chrono::steady_clock::now();
  auto train = nanonas::LoadFashionMnist(true, o.source);
  auto test = nanonas::LoadFashionMnist(false, o.source);
  if (!train.ok() || !test.ok()) {
    std::fprintf(stderr, "nanonas-make-standin: %s\n",
                 std::string((train.ok() ? test.status() : train.status()).message()).c_str());
    return 1;
  }
  std::filesystem::remove(std::filesystem::path(o.out) / "standin.json");
  for (const char* split : {"train", "test"}) {
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::path(o.out) / split, ec);
  }
  cv::setNumThreads(0);  // our threads do the parallel work
  if (!WriteSplit(*train, o.out + "/train", o.count, o.seed, 0, o.threads) ||
      !WriteSplit(*test, o.out + "/test", o.test_count, o.seed, 1, o.threads)) {
    return 1;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::ofstream meta(o.out + "/standin.json");
  meta << "{\"count\": " << o.count << ", \"test_count\": " << o.test_count
       << ", \"seed\": " << o.seed << ", \"threads\": " << o.threads
       << ", \"classes\": [\"not_person\", \"person\"], \"size\": \"50x50x3\", \"seconds\": "
       << seconds << "}\n";
  if (!meta) {
    std::fprintf(stderr, "nanonas-make-standin: cannot write %s/standin.json\n", o.out.c_str());
    return 1;
  }
  std::printf(
      "nanonas-make-standin: %lld training + %lld test images (50x50x3 PNG) in %s, "
      "%.1f s on %d threads (%.0f images/s)\n",
      static_cast<long long>(o.count), static_cast<long long>(o.test_count), o.out.c_str(), seconds,
      o.threads, (o.count + o.test_count) / seconds);
  return 0;
}
