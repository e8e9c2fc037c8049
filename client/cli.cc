#include "client/cli.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/targets.h"
#include "common/arch/architecture.h"
#include "common/base/units.h"

namespace nanonas {

std::string Usage() {
  return R"(nanonas: submit and follow NanoNAS hardware-aware architecture searches.

Usage: nanonas [--server HOST:PORT] [--json] [--timeout SECONDS] COMMAND [ARGS]

Commands:
  submit DATASET_DIR [flags]   upload DATASET_DIR (one sub-folder of images per class) and start
                               a search; prints the job id ({"job_id": ...} with --json)
      --input HxWxC            network input, e.g. 50x50x3 (default) or 28x28x1
      --target BOARD           RAM/Flash/MACC limits of a board (see `nanonas targets`)
      --ram BYTES              MCU RAM limit, e.g. 40KiB     (overrides --target)
      --flash BYTES            MCU Flash limit, e.g. 128KiB  (overrides --target)
      --macc COUNT             MACC limit, e.g. 2.73M        (overrides --target)
      --host-memory BYTES      memory of the machine training the candidates, e.g. 512MiB
      --epochs N (3)  --seed N (1)  --val-split F (0.3)  --lr F (0.001)  --batch N (16)
      --variant 2023|2024      search space variant (default 2023)
      --name TEXT              a name for humans
      --test-dir DIR           held-out test set (same layout), scored after final training
      --final-epochs N (100)   epochs of the final training of the winner
      --skip-final             stop after the search
      --watch                  then watch the job (exit status as `watch`)
  watch JOB                    show the search path live; returns when the job ends
  list [--state STATE] [--limit N]   jobs, newest first (STATE: queued, running, succeeded,
                               failed, cancelled; repeatable)
  get JOB                      the job: state, result, every candidate with its figures
      --out DIR                also download its artifacts (model.tflite, model.h,
                               report.json, search-path.svg) into DIR and print their paths
  cancel JOB                   cancel a queued or running job
  targets                      the board presets
  health [SERVICE]             grpc.health.v1 check of --server (a coordinator or a worker):
                               exit 0 when SERVING

Global flags:
  --server HOST:PORT   coordinator address (default: $NANONAS_SERVER, else localhost:50051)
  --json               machine-readable output (protobuf JSON, snake_case field names)
  --timeout SECONDS    deadline of each request (default 10; uploads and watch are longer)

Exit status:
  0  success (watch, submit --watch: the job SUCCEEDED)
  1  the job FAILED or was CANCELLED
  2  usage error, or a request the server rejected as invalid (the message says what to fix)
  3  the server is unreachable, timed out or failed
  4  no such job or dataset
)";
}

namespace {

bool IsFlag(const std::string& a) { return absl::StartsWith(a, "--"); }

struct ArgCursor {
  const std::vector<std::string>& args;
  size_t i = 0;
};

absl::StatusOr<double> ParseFloat(const std::string& flag, const std::string& v) {
  double d;
  if (!absl::SimpleAtod(v, &d) || !std::isfinite(d)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": '", v, "' is not a number"));
  }
  return d;
}

absl::StatusOr<int64_t> ParseInt(const std::string& flag, const std::string& v, int64_t lo,
                                 int64_t hi) {
  int64_t n;
  if (!absl::SimpleAtoi(v, &n) || n < lo || n > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": '", v, "' is not a whole number from ", lo, " to ", hi));
  }
  return n;
}

}  // namespace

std::string JobStateName(nanonas::v1::JobState state) {
  std::string n = nanonas::v1::JobState_Name(state);
  return absl::StartsWith(n, "JOB_STATE_") ? n.substr(10) : n;
}

std::string CandidateStateName(nanonas::v1::CandidateState s) {
  std::string n = nanonas::v1::CandidateState_Name(s);
  return absl::StartsWith(n, "CANDIDATE_STATE_") ? n.substr(16) : n;
}

absl::StatusOr<nanonas::v1::JobState> ParseJobState(const std::string& text) {
  nanonas::v1::JobState s;
  std::string upper = absl::AsciiStrToUpper(text);
  if (nanonas::v1::JobState_Parse("JOB_STATE_" + upper, &s) &&
      s != nanonas::v1::JOB_STATE_UNSPECIFIED) {
    return s;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--state: '", text, "' is not a job state (queued, running, succeeded, failed, cancelled)"));
}

absl::StatusOr<Command> ParseCommandLine(const std::vector<std::string>& args,
                                         const char* env_server) {
  Command cmd;
  if (env_server != nullptr && env_server[0] != '\0') cmd.global.server = env_server;
  std::vector<std::string> rest;  // command and its arguments, global flags removed
  bool help = false;
  // Global flags may come anywhere.
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i], value;
    bool inline_value = false;
    if (IsFlag(a) && a.find('=') != std::string::npos) {
      value = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
      inline_value = true;
    }
    auto take = [&]() -> absl::StatusOr<std::string> {
      if (inline_value) return value;
      if (i + 1 >= args.size())
        return absl::InvalidArgumentError(absl::StrCat(a, " needs a value"));
      return args[++i];
    };
    if (a == "--server") {
      auto v = take();
      if (!v.ok()) return v.status();
      if (v->find(':') == std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("--server: '", *v, "' is not HOST:PORT (e.g. localhost:50051)"));
      }
      cmd.global.server = *v;
    } else if (a == "--json") {
      cmd.global.json = true;
    } else if (a == "--timeout") {
      auto v = take();
      if (!v.ok()) return v.status();
      auto t = ParseFloat(a, *v);
      if (!t.ok()) return t.status();
      if (*t <= 0) return absl::InvalidArgumentError("--timeout must be positive (seconds)");
      cmd.global.timeout_seconds = *t;
    } else if (a == "--help" || a == "-h" || a == "help") {
      help = true;
    } else {
      rest.push_back(args[i]);
    }
  }
  if (help || rest.empty()) {
    cmd.kind = Command::Kind::kHelp;
    if (!help) return absl::InvalidArgumentError("no command given (try `nanonas --help`)");
    return cmd;
  }
  const std::string name = rest[0];
  std::vector<std::string> positional;
  std::vector<std::pair<std::string, std::string>> flags;  // in order
  static const char* kBoolFlags[] = {"--watch", "--skip-final"};
  for (size_t i = 1; i < rest.size(); ++i) {
    const std::string& a = rest[i];
    if (!IsFlag(a)) {
      positional.push_back(a);
      continue;
    }
    std::string f = a, v;
    size_t eq = a.find('=');
    bool is_bool = false;
    for (const char* b : kBoolFlags) is_bool |= (a == b);
    if (eq != std::string::npos) {
      f = a.substr(0, eq);
      v = a.substr(eq + 1);
    } else if (!is_bool) {
      if (i + 1 >= rest.size()) {
        return absl::InvalidArgumentError(absl::StrCat(a, " needs a value (see nanonas --help)"));
      }
      v = rest[++i];
    }
    flags.emplace_back(f, v);
  }
  auto need_job = [&]() -> absl::Status {
    if (positional.size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("`nanonas ", name, "` takes one JOB id (see `nanonas list`)"));
    }
    cmd.job_id = positional[0];
    return absl::OkStatus();
  };
  auto no_flags = [&]() -> absl::Status {
    if (!flags.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("`nanonas ", name, "` has no flag ", flags[0].first));
    }
    return absl::OkStatus();
  };

  if (name == "get") {
    cmd.kind = Command::Kind::kGet;
    absl::Status s = need_job();
    if (!s.ok()) return s;
    for (const auto& [f, v] : flags) {
      if (f != "--out") {
        return absl::InvalidArgumentError(absl::StrCat("`nanonas get` has no flag ", f));
      }
      if (v.empty()) return absl::InvalidArgumentError("--out: give a folder");
      cmd.out_dir = v;
    }
    return cmd;
  }
  if (name == "watch" || name == "cancel") {
    cmd.kind = name == "watch" ? Command::Kind::kWatch : Command::Kind::kCancel;
    absl::Status s = need_job();
    if (!s.ok()) return s;
    s = no_flags();
    if (!s.ok()) return s;
    return cmd;
  }
  if (name == "health") {
    cmd.kind = Command::Kind::kHealth;
    if (positional.size() > 1) {
      return absl::InvalidArgumentError("`nanonas health` takes at most one SERVICE name");
    }
    if (!positional.empty()) cmd.health_service = positional[0];
    absl::Status s = no_flags();
    if (!s.ok()) return s;
    return cmd;
  }
  if (name == "targets") {
    cmd.kind = Command::Kind::kTargets;
    if (!positional.empty())
      return absl::InvalidArgumentError("`nanonas targets` takes no argument");
    absl::Status s = no_flags();
    if (!s.ok()) return s;
    return cmd;
  }
  if (name == "list") {
    cmd.kind = Command::Kind::kList;
    if (!positional.empty()) return absl::InvalidArgumentError("`nanonas list` takes no argument");
    for (const auto& [f, v] : flags) {
      if (f == "--state") {
        for (absl::string_view part : absl::StrSplit(v, ',', absl::SkipEmpty())) {
          auto st = ParseJobState(std::string(part));
          if (!st.ok()) return st.status();
          cmd.states.push_back(*st);
        }
      } else if (f == "--limit") {
        auto n = ParseInt(f, v, 0, 1000000);
        if (!n.ok()) return n.status();
        cmd.limit = static_cast<int>(*n);
      } else {
        return absl::InvalidArgumentError(absl::StrCat("`nanonas list` has no flag ", f));
      }
    }
    return cmd;
  }
  if (name != "submit") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown command '", name,
                     "' (commands: submit, watch, list, get, cancel, targets, health)"));
  }

  cmd.kind = Command::Kind::kSubmit;
  if (positional.size() != 1) {
    return absl::InvalidArgumentError(
        "`nanonas submit` takes one DATASET_DIR (a folder with one sub-folder of images per "
        "class)");
  }
  cmd.dataset_dir = positional[0];
  nanonas::v1::JobSpec& spec = cmd.spec;
  spec.mutable_input()->set_height(50);
  spec.mutable_input()->set_width(50);
  spec.mutable_input()->set_channels(3);
  spec.set_validation_split(0.3);
  spec.set_variant("2023");
  auto* ev = spec.mutable_evaluation();
  ev->set_epochs(3);
  ev->set_learning_rate(0.001f);
  ev->set_batch_size(16);
  ev->set_seed(1);
  auto* fin = spec.mutable_final_training();
  fin->set_epochs(100);
  fin->set_learning_rate(0.01f);
  fin->set_batch_size(128);
  auto* lim = spec.mutable_constraints();

  // --target first, so that explicit limits override it wherever they appear.
  for (const auto& [f, v] : flags) {
    if (f != "--target") continue;
    const BoardPreset* b = FindBoard(v);
    if (b == nullptr) {
      std::vector<std::string> names;
      for (const auto& p : BoardPresets()) names.push_back(p.name);
      return absl::InvalidArgumentError(
          absl::StrCat("--target: unknown board '", v, "'; known: ", absl::StrJoin(names, ", ")));
    }
    lim->set_ram_bytes(b->ram_bytes);
    lim->set_flash_bytes(b->flash_bytes);
    lim->set_macc(b->macc());
    lim->set_target(b->name);
  }
  for (const auto& [f, v] : flags) {
    absl::Status bad;
    if (f == "--target") continue;
    if (f == "--input") {
      auto s = ParseInputShape(v);
      if (!s.ok())
        return absl::InvalidArgumentError(
            absl::StrCat("--input: ", s.status().message(), " (e.g. 50x50x3 or 28x28x1)"));
      if (s->height <= 0 || s->width <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--input: ", v, " has a zero size (e.g. 50x50x3 or 28x28x1)"));
      }
      spec.mutable_input()->set_height(s->height);
      spec.mutable_input()->set_width(s->width);
      spec.mutable_input()->set_channels(s->channels);
    } else if (f == "--ram" || f == "--flash" || f == "--host-memory") {
      auto b = ParseBytes(v);
      if (!b.ok()) return absl::InvalidArgumentError(absl::StrCat(f, ": ", b.status().message()));
      if (f == "--ram") lim->set_ram_bytes(*b);
      if (f == "--flash") lim->set_flash_bytes(*b);
      if (f == "--host-memory") lim->set_host_memory_bytes(*b);
    } else if (f == "--macc") {
      auto n = ParseCount(v);
      if (!n.ok()) return absl::InvalidArgumentError(absl::StrCat(f, ": ", n.status().message()));
      if (*n <= 0) return absl::InvalidArgumentError("--macc must be positive");
      lim->set_macc(*n);
    } else if (f == "--epochs") {
      auto n = ParseInt(f, v, 1, 1000);
      if (!n.ok()) return n.status();
      ev->set_epochs(static_cast<int>(*n));
    } else if (f == "--seed") {
      auto n = ParseInt(f, v, 0, INT64_MAX);
      if (!n.ok()) return n.status();
      ev->set_seed(static_cast<uint64_t>(*n));
    } else if (f == "--batch") {
      auto n = ParseInt(f, v, 1, 65536);
      if (!n.ok()) return n.status();
      ev->set_batch_size(static_cast<int>(*n));
    } else if (f == "--lr") {
      auto d = ParseFloat(f, v);
      if (!d.ok()) return d.status();
      if (*d <= 0) return absl::InvalidArgumentError("--lr must be positive");
      ev->set_learning_rate(static_cast<float>(*d));
    } else if (f == "--val-split") {
      auto d = ParseFloat(f, v);
      if (!d.ok()) return d.status();
      if (*d <= 0 || *d >= 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--val-split: ", v, " is outside (0, 1); e.g. 0.3 keeps 30% for validation"));
      }
      spec.set_validation_split(*d);
    } else if (f == "--variant") {
      auto var = ParseVariant(v);
      if (!var.ok())
        return absl::InvalidArgumentError(absl::StrCat("--variant: '", v, "' is not 2023 or 2024"));
      spec.set_variant(VariantName(*var));
    } else if (f == "--name") {
      spec.set_name(v);
    } else if (f == "--test-dir") {
      cmd.test_dir = v;
    } else if (f == "--final-epochs") {
      auto n = ParseInt(f, v, 1, 100000);
      if (!n.ok()) return n.status();
      fin->set_epochs(static_cast<int>(*n));
    } else if (f == "--skip-final") {
      fin->set_skip(true);
    } else if (f == "--watch") {
      cmd.watch = true;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("`nanonas submit` has no flag ", f, " (see nanonas --help)"));
    }
  }
  if (lim->ram_bytes() <= 0 && lim->flash_bytes() <= 0) {
    return absl::InvalidArgumentError(
        "give the MCU's limits: --target BOARD (see `nanonas targets`) or --ram and/or --flash "
        "(e.g. --ram 40KiB --flash 128KiB --macc 2.73M)");
  }
  return cmd;
}

}  // namespace nanonas
