#include "worker/eval/command_line.h"

#include <algorithm>

#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace nanonas {
namespace {

// absl's built-in flags, and those of them that take a separate value.
constexpr absl::string_view kAbslFlags[] = {
    "help",    "helpfull",        "helpshort", "helppackage", "helpon",     "helpmatch",
    "version", "only_check_args", "flagfile",  "fromenv",     "tryfromenv", "undefok"};
constexpr absl::string_view kAbslFlagsWithValue[] = {"helpon",  "helpmatch",  "flagfile",
                                                     "fromenv", "tryfromenv", "undefok"};

template <size_t N>
bool OneOf(absl::string_view name, const absl::string_view (&names)[N]) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

}  // namespace

std::vector<std::string> UnderscoreFlagNames(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  for (size_t i = 1; i < args.size() && args[i] != "--"; ++i) {
    std::string& a = args[i];
    if (a.size() < 2 || a[0] != '-') continue;
    const size_t start = a.find_first_not_of('-');
    const size_t end = std::min(a.find('='), a.size());
    for (size_t j = start; j < end && start != std::string::npos; ++j) {
      if (a[j] == '-') a[j] = '_';
    }
  }
  return args;
}

bool WantsHelp(const std::vector<std::string>& args) {
  for (size_t i = 1; i < args.size(); ++i) {
    const absl::string_view a = args[i];
    if (a == "--") return false;
    if (a == "--help" || a == "-help" || a == "-h") return true;
  }
  return false;
}

void PrintFlagHelp(absl::string_view program, absl::string_view defined_in, std::ostream& out) {
  std::vector<absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (absl::StrContains(flag->Filename(), defined_in)) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(), [](auto* a, auto* b) { return a->Name() < b->Name(); });
  out << program << ": " << absl::ProgramUsageMessage() << "\n\nFlags:\n";
  for (const absl::CommandLineFlag* f : flags) {
    std::string name(f->Name());
    std::replace(name.begin(), name.end(), '_', '-');
    out << "  --" << name << " (default: " << f->DefaultValue() << ")\n      " << f->Help() << "\n";
  }
}

CheckedCommandLine CheckCommandLine(const std::vector<std::string>& args) {
  CheckedCommandLine out;
  for (size_t i = 1; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "--") {
      if (i + 1 < args.size()) out.error = absl::StrCat("unexpected argument '", args[i + 1], "'");
      return out;
    }
    if (!absl::ConsumePrefix(&arg, "-")) {
      out.error = absl::StrCat("unexpected argument '", arg, "' (flags start with --)");
      return out;
    }
    absl::ConsumePrefix(&arg, "-");
    const size_t eq = arg.find('=');
    const absl::string_view name = arg.substr(0, eq);
    const bool has_value = eq != absl::string_view::npos;
    if (OneOf(name, kAbslFlags)) {
      // Their values (if any) are absl's business; skip a separate value for the ones taking one.
      if (!has_value && OneOf(name, kAbslFlagsWithValue)) ++i;
      continue;
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && absl::StartsWith(name, "no") && !has_value) {
      absl::CommandLineFlag* negated = absl::FindCommandLineFlag(name.substr(2));
      if (negated != nullptr && negated->IsOfType<bool>()) continue;
    }
    if (flag == nullptr) {
      out.error = absl::StrCat("unknown flag --", name);
      return out;
    }
    out.given.emplace_back(name);
    std::string value;
    if (has_value) {
      value = std::string(arg.substr(eq + 1));
    } else if (flag->IsOfType<bool>()) {
      continue;
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      out.error = absl::StrCat("flag --", name, " needs a value");
      return out;
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      out.error = absl::StrCat("bad value '", value, "' for --", name, ": ", error);
      return out;
    }
  }
  return out;
}

}  // namespace nanonas
