// nanonas-eval's command line on top of absl flags: flags spelled with dashes (--val-split), a
// bad command line reported as a message (the tool exits 2, where absl::ParseCommandLine would
// exit 1), --help listing only the tool's own flags with exit status 0, and which flags were given
// (absl's IsSpecifiedOnCommandLine is private in Debian's Abseil). Reads the global flag registry;
// call from main() only (not thread-safe against concurrent flag changes).
#ifndef NANONAS_WORKER_EVAL_COMMAND_LINE_H_
#define NANONAS_WORKER_EVAL_COMMAND_LINE_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace nanonas {

// argv with every flag name's dashes made underscores (--val-split=0.2 -> --val_split=0.2), up to
// a "--"; values are left alone.
std::vector<std::string> UnderscoreFlagNames(int argc, char** argv);

// Whether the arguments (argv[0] first) ask for --help, -help or -h before any "--".
bool WantsHelp(const std::vector<std::string>& args);

// The usage message (absl::ProgramUsageMessage) and every flag defined in a file whose name
// contains `defined_in`, sorted, spelled with dashes, with its default and help text.
void PrintFlagHelp(absl::string_view program, absl::string_view defined_in, std::ostream& out);

struct CheckedCommandLine {
  std::string error;               // "" when every flag is known and its value parses
  std::vector<std::string> given;  // names of the flags given (underscored), in order
};

// Checks the arguments (argv[0] first, names underscored) against the registered flags without
// exiting: unknown flags, missing or bad values, stray arguments. absl's own flags (--helpfull,
// --flagfile, ...) are let through. Parses each value into its flag (absl::ParseCommandLine then
// sets the same values).
CheckedCommandLine CheckCommandLine(const std::vector<std::string>& args);

}  // namespace nanonas

#endif  // NANONAS_WORKER_EVAL_COMMAND_LINE_H_
