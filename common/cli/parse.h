// Parsing a command line with CLI11, the one way every CLI11-based binary does it (the nanonas
// CLI and nanonas-worker): arguments in order, `--flag value` and `--flag=value`, and a parse
// error returned as a Status whose text names the flag and ends with where help is.
// Pure apart from `app`'s callbacks; thread-compatible (one App per call).
#ifndef NANONAS_COMMON_CLI_PARSE_H_
#define NANONAS_COMMON_CLI_PARSE_H_

#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace nanonas {

// Parses `args` (argv without the program name) into `app`. INVALID_ARGUMENT on a CLI11 parse
// error: "--out needs a value (see nanonas --help)" for a flag given without its value, else
// CLI11's own message; either followed by " (" + help_hint + ")".
absl::Status ParseCommandLineArgs(CLI::App& app, const std::vector<std::string>& args,
                                  absl::string_view help_hint);

}  // namespace nanonas

#endif  // NANONAS_COMMON_CLI_PARSE_H_
