// The one-line progress texts of `nanonas submit` (upload, dataset preparation) and the line a
// terminal redraws in place. Pure functions (text in, text out) except InPlaceLine's owner,
// ProgressLine, which writes to a stream; ProgressLine is not thread-safe.
#ifndef NANONAS_CLIENT_PROGRESS_H_
#define NANONAS_CLIENT_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

#include "nanonas/v1/nanonas.pb.h"

namespace nanonas {

// "1,234,567".
std::string FormatThousands(int64_t n);

// "120.5 MiB / 472.0 MiB (25%), 85.3 MiB/s, ETA 4s": bytes sent of `total` (<= 0: unknown, then
// "120.5 MiB, 85.3 MiB/s"), the mean rate since the start and the time left at that rate. No rate
// or ETA before anything was measured (elapsed or done zero).
std::string FormatTransferProgress(int64_t done, int64_t total, double elapsed_seconds);

// "472.0 MiB in 5.6s (84.2 MiB/s)".
std::string FormatTransferSummary(int64_t bytes, double elapsed_seconds);

// "preparing vww: 45,000/115,000 images (39%), 4,100 images/s, ETA 17s" from the server's
// Preparation (the rate from its seconds); "preparing vww: dataset already prepared" when it was
// reused; "preparing the test set vww-test: ..." for the test set. `name` may be empty ("preparing
// the dataset: ...", "preparing the test set: ...").
std::string FormatPreparation(const nanonas::v1::Preparation& preparation, const std::string& name);

// "prepared vww: 115,000 images in 28s", or "vww: dataset already prepared".
std::string FormatPreparationSummary(const nanonas::v1::Preparation& preparation,
                                     const std::string& name);

// Which tenth (0..10) of the preparation is done: the pipe log prints a line when it grows.
int PreparationDecile(const nanonas::v1::Preparation& preparation);

// "\r<text>\033[K": the text over the current terminal line.
std::string InPlaceLine(const std::string& text);

// A line redrawn in place on a terminal, at most every `interval` unless forced.
class ProgressLine {
 public:
  ProgressLine(std::ostream& out, std::chrono::milliseconds interval)
      : out_(out), interval_(interval) {}
  // Draws `text` when `force` or `interval` has passed since the last draw.
  void Draw(const std::string& text, bool force = false);
  // Ends the line: `text` replaces it, followed by a newline (nothing when nothing was drawn and
  // `text` is empty).
  void Finish(const std::string& text);
  // Seconds since construction.
  double Elapsed() const;
  bool drawn() const { return drawn_; }

 private:
  std::ostream& out_;
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_{};
  bool drawn_ = false;
};

}  // namespace nanonas

#endif  // NANONAS_CLIENT_PROGRESS_H_
