#include "common/cli/parse.h"

#include "absl/strings/str_cat.h"

namespace nanonas {

absl::Status ParseCommandLineArgs(CLI::App& app, const std::vector<std::string>& args,
                                  absl::string_view help_hint) {
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 pops from the back
  try {
    app.parse(reversed);
  } catch (const CLI::ArgumentMismatch& e) {
    const std::string what = e.what();
    return absl::InvalidArgumentError(
        absl::StrCat(what.substr(0, what.find(':')), " needs a value (", help_hint, ")"));
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(absl::StrCat(e.what(), " (", help_hint, ")"));
  }
  return absl::OkStatus();
}

}  // namespace nanonas
