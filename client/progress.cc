#include "client/progress.h"

#include <algorithm>
#include <cmath>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/watch_view.h"

namespace nanonas {
namespace v1 = nanonas::v1;

namespace {

// "512 B", "12.0 KiB", "120.5 MiB", "1.25 GiB".
std::string TransferBytes(double bytes) {
  if (bytes < 1024) return absl::StrFormat("%.0f B", bytes);
  if (bytes < 1024.0 * 1024) return absl::StrFormat("%.1f KiB", bytes / 1024);
  if (bytes < 1024.0 * 1024 * 1024) return absl::StrFormat("%.1f MiB", bytes / (1024.0 * 1024));
  return absl::StrFormat("%.2f GiB", bytes / (1024.0 * 1024 * 1024));
}

int Percent(int64_t done, int64_t total) {
  if (total <= 0) return 0;
  return static_cast<int>(std::clamp<int64_t>(done * 100 / total, 0, 100));
}

}  // namespace

std::string FormatThousands(int64_t n) {
  std::string digits = absl::StrCat(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return n < 0 ? "-" + out : out;
}

std::string FormatTransferProgress(int64_t done, int64_t total, double elapsed_seconds) {
  std::string o = TransferBytes(static_cast<double>(done));
  if (total > 0) {
    absl::StrAppend(&o, " / ", TransferBytes(static_cast<double>(total)), " (",
                    Percent(done, total), "%)");
  }
  if (elapsed_seconds > 0 && done > 0) {
    const double rate = static_cast<double>(done) / elapsed_seconds;
    absl::StrAppend(&o, ", ", TransferBytes(rate), "/s");
    if (total > 0) {
      absl::StrAppend(
          &o, ", ETA ",
          FormatDuration(static_cast<double>(std::max<int64_t>(total - done, 0)) / rate));
    }
  }
  return o;
}

std::string FormatTransferSummary(int64_t bytes, double elapsed_seconds) {
  std::string o = absl::StrCat(TransferBytes(static_cast<double>(bytes)), " in ",
                               absl::StrFormat("%.1fs", std::max(elapsed_seconds, 0.0)));
  if (elapsed_seconds > 0) {
    absl::StrAppend(&o, " (", TransferBytes(static_cast<double>(bytes) / elapsed_seconds), "/s)");
  }
  return o;
}

std::string FormatPreparation(const v1::Preparation& p, const std::string& name) {
  std::string what = p.test_set() ? "the test set" : "the dataset";
  if (!name.empty()) what = p.test_set() ? absl::StrCat("the test set ", name) : name;
  std::string o = absl::StrCat("preparing ", what, ": ");
  if (p.reused()) return o + "dataset already prepared";
  absl::StrAppend(&o, FormatThousands(p.images_done()));
  if (p.images_total() > 0) {
    absl::StrAppend(&o, "/", FormatThousands(p.images_total()), " images (",
                    Percent(p.images_done(), p.images_total()), "%)");
  } else {
    absl::StrAppend(&o, " images");
  }
  if (p.seconds() > 0 && p.images_done() > 0) {
    const double rate = static_cast<double>(p.images_done()) / p.seconds();
    absl::StrAppend(&o, ", ", FormatThousands(std::llround(rate)), " images/s");
    if (p.images_total() > 0) {
      const double left =
          static_cast<double>(std::max<int64_t>(p.images_total() - p.images_done(), 0));
      absl::StrAppend(&o, ", ETA ", FormatDuration(left / rate));
    }
  }
  return o;
}

std::string FormatPreparationSummary(const v1::Preparation& p, const std::string& name) {
  const std::string what = name.empty() ? (p.test_set() ? "the test set" : "the dataset") : name;
  if (p.reused()) return absl::StrCat(what, ": dataset already prepared");
  return absl::StrCat("prepared ", what, ": ",
                      FormatThousands(std::max(p.images_done(), p.images_total())), " images in ",
                      FormatDuration(p.seconds()));
}

int PreparationDecile(const v1::Preparation& p) {
  if (p.reused()) return 10;
  if (p.images_total() <= 0) return 0;
  return Percent(p.images_done(), p.images_total()) / 10;
}

std::string InPlaceLine(const std::string& text) { return absl::StrCat("\r", text, "\033[K"); }

void ProgressLine::Draw(const std::string& text, bool force) {
  const auto now = std::chrono::steady_clock::now();
  if (!force && drawn_ && now - last_ < interval_) return;
  last_ = now;
  drawn_ = true;
  out_ << InPlaceLine(text);
  out_.flush();
}

void ProgressLine::Finish(const std::string& text) {
  if (!drawn_ && text.empty()) return;
  out_ << (drawn_ ? InPlaceLine(text) : text) << "\n";
  out_.flush();
  drawn_ = false;
}

double ProgressLine::Elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

}  // namespace nanonas
