#include "common/base/units.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace nanonas {
namespace {

struct Split {
  double number;
  std::string suffix;
};

absl::StatusOr<Split> SplitNumber(absl::string_view text, absl::string_view what) {
  std::string s(absl::StripAsciiWhitespace(text));
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  double number = 0;
  if (i == 0 || !absl::SimpleAtod(s.substr(0, i), &number)) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a valid ", what,
                                                   " (expected a number like 40KiB or 2.73M)"));
  }
  return Split{number, std::string(absl::StripAsciiWhitespace(absl::string_view(s).substr(i)))};
}

absl::StatusOr<int64_t> Finish(double value, absl::string_view text, absl::string_view what) {
  if (!(value >= 1) || value > 9.0e18) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a valid ", what, ": it must be at least 1"));
  }
  return static_cast<int64_t>(std::llround(value));
}

}  // namespace

absl::StatusOr<int64_t> ParseBytes(absl::string_view text) {
  auto split = SplitNumber(text, "size");
  if (!split.ok()) return split.status();
  const std::string& u = split->suffix;
  double mult = 0;
  if (u.empty() || u == "B" || u == "b")
    mult = 1;
  else if (u == "KiB" || u == "K" || u == "k")
    mult = 1024.0;
  else if (u == "MiB" || u == "M")
    mult = 1024.0 * 1024;
  else if (u == "GiB" || u == "G")
    mult = 1024.0 * 1024 * 1024;
  else if (u == "kB" || u == "KB")
    mult = 1000.0;
  else if (u == "MB")
    mult = 1e6;
  else if (u == "GB")
    mult = 1e9;
  else {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "': unknown size unit '", u,
                                                   "' (use B, KiB, MiB, GiB, kB, MB or GB)"));
  }
  return Finish(split->number * mult, text, "size");
}

absl::StatusOr<int64_t> ParseCount(absl::string_view text) {
  auto split = SplitNumber(text, "count");
  if (!split.ok()) return split.status();
  const std::string& u = split->suffix;
  double mult = 0;
  if (u.empty())
    mult = 1;
  else if (u == "k" || u == "K")
    mult = 1e3;
  else if (u == "M" || u == "m")
    mult = 1e6;
  else if (u == "G" || u == "g")
    mult = 1e9;
  else {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "': unknown multiplier '", u, "' (use k, M or G)"));
  }
  return Finish(split->number * mult, text, "count");
}

std::string FormatBytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  if (bytes < 1024 * 1024) return absl::StrFormat("%.1f KiB", bytes / 1024.0);
  if (bytes < 1024LL * 1024 * 1024) return absl::StrFormat("%.2f MiB", bytes / (1024.0 * 1024));
  return absl::StrFormat("%.2f GiB", bytes / (1024.0 * 1024 * 1024));
}

std::string FormatCount(int64_t count) {
  if (count < 1000) return absl::StrCat(count);
  if (count < 1000000) return absl::StrFormat("%.1f k", count / 1e3);
  if (count < 1000000000) return absl::StrFormat("%.2f M", count / 1e6);
  return absl::StrFormat("%.2f G", count / 1e9);
}

}  // namespace nanonas
