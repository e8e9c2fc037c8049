#include "client/cli.h"

#include <cmath>
#include <memory>
#include <utility>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/targets.h"
#include "common/api/defaults.h"
#include "common/arch/architecture.h"
#include "common/base/status_macros.h"
#include "common/base/units.h"
#include "common/cli/parse.h"

namespace nanonas {

std::string Usage() {
  return R"(nanonas: submit and follow NanoNAS hardware-aware architecture searches.

Usage: nanonas [--server HOST:PORT] [--json] [--timeout SECONDS] COMMAND [ARGS]

Commands:
  submit DATASET_DIR [flags]   upload DATASET_DIR (one sub-folder of images per class) and start
                               a search; prints the job id ({"job_id": ...} with --json). On a
                               terminal it shows the upload's and the dataset preparation's
                               progress and returns once the job runs. Retries are safe: the
                               upload is content-addressed, the submit idempotent
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
  list [--state STATE] [--limit N]   jobs, newest first (STATE: queued, preparing, running,
                               succeeded, failed, cancelled; repeatable)
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
  --timeout SECONDS    deadline of each request (default 10; uploads and watch have none)
  --help, -h           this text (also `nanonas help`)

Exit status:
  0  success (watch, submit --watch: the job SUCCEEDED)
  1  the job FAILED or was CANCELLED
  2  usage error, or a request the server rejected as invalid (the message says what to fix)
  3  the server is unreachable, timed out or failed
  4  no such job or dataset
)";
}

namespace {

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

// The command line as CLI11 leaves it: every value still text, checked afterwards so that each
// message names the flag and what it expects.
struct RawArgs {
  bool help = false, json = false, watch = false, skip_final = false;
  std::string server, timeout;
  std::vector<std::string> positional;  // the subcommand's arguments
  std::vector<std::string> states;      // list --state (repeatable, comma-separated)
  std::string limit, out;
  // submit
  std::string input, target, ram, flash, macc, host_memory, epochs, seed, val_split, lr, batch,
      variant, name, test_dir, final_epochs;
};

// The string option `name` of `app`, the last occurrence winning.
CLI::Option* Text(CLI::App* app, const std::string& name, std::string* into) {
  return app->add_option(name, *into)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
}

std::unique_ptr<CLI::App> BuildApp(RawArgs* raw) {
  auto app = std::make_unique<CLI::App>("nanonas: submit and follow NanoNAS searches", "nanonas");
  app->set_help_flag();  // Usage() is the help text; --help is an ordinary flag
  app->allow_extras();   // unknown words and flags are reported by ParseCommandLine
  app->fallthrough();    // global flags may follow the subcommand
  app->require_subcommand(0, 1);
  app->add_flag("--help,-h", raw->help);
  app->add_flag("--json", raw->json);
  Text(app.get(), "--server", &raw->server);
  Text(app.get(), "--timeout", &raw->timeout);
  app->add_subcommand("help");
  for (const char* name : {"watch", "cancel", "targets", "health"}) {
    app->add_subcommand(name)->add_option("args", raw->positional);
  }
  CLI::App* get = app->add_subcommand("get");
  get->add_option("args", raw->positional);
  Text(get, "--out", &raw->out);
  CLI::App* list = app->add_subcommand("list");
  list->add_option("--state", raw->states)->allow_extra_args(false);
  Text(list, "--limit", &raw->limit);
  CLI::App* submit = app->add_subcommand("submit");
  submit->add_option("args", raw->positional);
  const std::pair<const char*, std::string*> texts[] = {{"--input", &raw->input},
                                                        {"--target", &raw->target},
                                                        {"--ram", &raw->ram},
                                                        {"--flash", &raw->flash},
                                                        {"--macc", &raw->macc},
                                                        {"--host-memory", &raw->host_memory},
                                                        {"--epochs", &raw->epochs},
                                                        {"--seed", &raw->seed},
                                                        {"--val-split", &raw->val_split},
                                                        {"--lr", &raw->lr},
                                                        {"--batch", &raw->batch},
                                                        {"--variant", &raw->variant},
                                                        {"--name", &raw->name},
                                                        {"--test-dir", &raw->test_dir},
                                                        {"--final-epochs", &raw->final_epochs}};
  for (const auto& [name, into] : texts) Text(submit, name, into);
  submit->add_flag("--skip-final", raw->skip_final);
  submit->add_flag("--watch", raw->watch);
  return app;
}

absl::Status ParseGlobal(const RawArgs& raw, GlobalOptions* g) {
  g->json = raw.json;
  if (!raw.server.empty()) {
    if (raw.server.find(':') == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--server: '", raw.server, "' is not HOST:PORT (e.g. localhost:50051)"));
    }
    g->server = raw.server;
  }
  if (!raw.timeout.empty()) {
    NANONAS_ASSIGN_OR_RETURN(double t, ParseFloat("--timeout", raw.timeout));
    if (t <= 0) return absl::InvalidArgumentError("--timeout must be positive (seconds)");
    g->timeout_seconds = t;
  }
  return absl::OkStatus();
}

// The board preset, then explicit limits (which win wherever they appear).
absl::Status ParseLimits(const RawArgs& raw, nanonas::v1::Constraints* lim) {
  if (!raw.target.empty()) {
    const BoardPreset* b = FindBoard(raw.target);
    if (b == nullptr) {
      std::vector<std::string> names;
      for (const auto& p : BoardPresets()) names.push_back(p.name);
      return absl::InvalidArgumentError(absl::StrCat("--target: unknown board '", raw.target,
                                                     "'; known: ", absl::StrJoin(names, ", ")));
    }
    lim->set_ram_bytes(b->ram_bytes);
    lim->set_flash_bytes(b->flash_bytes);
    lim->set_macc(b->macc());
    lim->set_target(b->name);
  }
  const std::pair<const char*, const std::string*> sizes[] = {
      {"--ram", &raw.ram}, {"--flash", &raw.flash}, {"--host-memory", &raw.host_memory}};
  for (const auto& [flag, text] : sizes) {
    if (text->empty()) continue;
    auto b = ParseBytes(*text);
    if (!b.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, ": ", b.status().message()));
    if (flag == sizes[0].first) lim->set_ram_bytes(*b);
    if (flag == sizes[1].first) lim->set_flash_bytes(*b);
    if (flag == sizes[2].first) lim->set_host_memory_bytes(*b);
  }
  if (!raw.macc.empty()) {
    auto n = ParseCount(raw.macc);
    if (!n.ok()) return absl::InvalidArgumentError(absl::StrCat("--macc: ", n.status().message()));
    if (*n <= 0) return absl::InvalidArgumentError("--macc must be positive");
    lim->set_macc(*n);
  }
  if (lim->ram_bytes() <= 0 && lim->flash_bytes() <= 0) {
    return absl::InvalidArgumentError(
        "give the MCU's limits: --target BOARD (see `nanonas targets`) or --ram and/or --flash "
        "(e.g. --ram 40KiB --flash 128KiB --macc 2.73M)");
  }
  return absl::OkStatus();
}

// Input shape, variant and the training settings of `submit`.
absl::Status ParseTraining(const RawArgs& raw, nanonas::v1::JobSpec* spec) {
  if (!raw.input.empty()) {
    auto s = ParseInputShape(raw.input);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--input: ", s.status().message(), " (e.g. 50x50x3 or 28x28x1)"));
    }
    if (s->height <= 0 || s->width <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--input: ", raw.input, " has a zero size (e.g. 50x50x3 or 28x28x1)"));
    }
    spec->mutable_input()->set_height(s->height);
    spec->mutable_input()->set_width(s->width);
    spec->mutable_input()->set_channels(s->channels);
  }
  auto* ev = spec->mutable_evaluation();
  auto* fin = spec->mutable_final_training();
  if (!raw.epochs.empty()) {
    NANONAS_ASSIGN_OR_RETURN(int64_t n, ParseInt("--epochs", raw.epochs, 1, 1000));
    ev->set_epochs(static_cast<int>(n));
  }
  if (!raw.seed.empty()) {
    NANONAS_ASSIGN_OR_RETURN(int64_t n, ParseInt("--seed", raw.seed, 0, INT64_MAX));
    ev->set_seed(static_cast<uint64_t>(n));
  }
  if (!raw.batch.empty()) {
    NANONAS_ASSIGN_OR_RETURN(int64_t n, ParseInt("--batch", raw.batch, 1, 65536));
    ev->set_batch_size(static_cast<int>(n));
  }
  if (!raw.lr.empty()) {
    NANONAS_ASSIGN_OR_RETURN(double d, ParseFloat("--lr", raw.lr));
    if (d <= 0) return absl::InvalidArgumentError("--lr must be positive");
    ev->set_learning_rate(static_cast<float>(d));
  }
  if (!raw.val_split.empty()) {
    NANONAS_ASSIGN_OR_RETURN(double d, ParseFloat("--val-split", raw.val_split));
    if (d <= 0 || d >= 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--val-split: ", raw.val_split, " is outside (0, 1); e.g. 0.3 keeps 30% for validation"));
    }
    spec->set_validation_split(d);
  }
  if (!raw.variant.empty()) {
    auto var = ParseVariant(raw.variant);
    if (!var.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--variant: '", raw.variant, "' is not 2023 or 2024"));
    }
    spec->set_variant(VariantName(*var));
  }
  if (!raw.final_epochs.empty()) {
    NANONAS_ASSIGN_OR_RETURN(int64_t n, ParseInt("--final-epochs", raw.final_epochs, 1, 100000));
    fin->set_epochs(static_cast<int>(n));
  }
  if (raw.skip_final) fin->set_skip(true);
  if (!raw.name.empty()) spec->set_name(raw.name);
  return absl::OkStatus();
}

absl::Status ParseSubmit(const RawArgs& raw, Command* cmd) {
  if (raw.positional.size() != 1) {
    return absl::InvalidArgumentError(
        "`nanonas submit` takes one DATASET_DIR (a folder with one sub-folder of images per "
        "class)");
  }
  cmd->dataset_dir = raw.positional[0];
  cmd->test_dir = raw.test_dir;
  cmd->watch = raw.watch;
  cmd->spec = defaults::DefaultJobSpec();
  NANONAS_RETURN_IF_ERROR(ParseTraining(raw, &cmd->spec));
  return ParseLimits(raw, cmd->spec.mutable_constraints());
}

// The arguments of every subcommand but submit.
absl::Status ParseOther(const std::string& name, const RawArgs& raw, const CLI::App& sub,
                        Command* cmd) {
  if (name == "get" || name == "watch" || name == "cancel") {
    cmd->kind = name == "get"     ? Command::Kind::kGet
                : name == "watch" ? Command::Kind::kWatch
                                  : Command::Kind::kCancel;
    if (raw.positional.size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("`nanonas ", name, "` takes one JOB id (see `nanonas list`)"));
    }
    cmd->job_id = raw.positional[0];
    if (name == "get" && sub.count("--out") > 0 && raw.out.empty()) {
      return absl::InvalidArgumentError("--out: give a folder");
    }
    cmd->out_dir = raw.out;
  } else if (name == "health") {
    cmd->kind = Command::Kind::kHealth;
    if (raw.positional.size() > 1) {
      return absl::InvalidArgumentError("`nanonas health` takes at most one SERVICE name");
    }
    if (!raw.positional.empty()) cmd->health_service = raw.positional[0];
  } else if (name == "targets") {
    cmd->kind = Command::Kind::kTargets;
    if (!raw.positional.empty()) {
      return absl::InvalidArgumentError("`nanonas targets` takes no argument");
    }
  } else if (name == "list") {
    cmd->kind = Command::Kind::kList;
    for (const std::string& text : raw.states) {
      for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
        auto st = ParseJobState(part);
        if (!st.ok())
          return absl::InvalidArgumentError(absl::StrCat("--state: ", st.status().message()));
        cmd->states.push_back(*st);
      }
    }
    if (!raw.limit.empty()) {
      NANONAS_ASSIGN_OR_RETURN(int64_t n, ParseInt("--limit", raw.limit, 0, 1000000));
      cmd->limit = static_cast<int>(n);
    }
  }
  return absl::OkStatus();
}

// What CLI11 could not place: an unknown command, or a flag or argument the command lacks.
absl::Status CheckLeftovers(const std::vector<std::string>& left, const std::string& name) {
  if (left.empty()) return absl::OkStatus();
  if (name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown command '", left[0],
                     "' (commands: submit, watch, list, get, cancel, targets, health)"));
  }
  for (const std::string& a : left) {
    if (absl::StartsWith(a, "-")) {
      const std::string flag = a.substr(0, a.find('='));
      return absl::InvalidArgumentError(
          absl::StrCat("`nanonas ", name, "` has no flag ", flag, " (see nanonas --help)"));
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("`nanonas ", name, "` takes no argument '", left[0], "' (see nanonas --help)"));
}

}  // namespace

std::vector<std::string> CommandLineFlags() {
  RawArgs raw;
  std::unique_ptr<CLI::App> app = BuildApp(&raw);
  std::vector<std::string> flags;
  std::vector<const CLI::App*> apps = {app.get()};
  for (const CLI::App* sub : app->get_subcommands([](const CLI::App*) { return true; })) {
    apps.push_back(sub);
  }
  for (const CLI::App* a : apps) {
    for (const CLI::Option* o : a->get_options()) {
      for (const std::string& l : o->get_lnames()) flags.push_back("--" + l);
    }
  }
  return flags;
}

absl::StatusOr<Command> ParseCommandLine(const std::vector<std::string>& args,
                                         const char* env_server) {
  Command cmd;
  if (env_server != nullptr && env_server[0] != '\0') cmd.global.server = env_server;
  RawArgs raw;
  std::unique_ptr<CLI::App> app = BuildApp(&raw);
  NANONAS_RETURN_IF_ERROR(ParseCommandLineArgs(*app, args, "see nanonas --help"));
  NANONAS_RETURN_IF_ERROR(ParseGlobal(raw, &cmd.global));
  const std::vector<CLI::App*> subs = app->get_subcommands();
  const std::string name = subs.empty() ? "" : subs[0]->get_name();
  if (raw.help || name == "help") return cmd;  // kHelp
  if (name.empty() && app->remaining().empty()) {
    return absl::InvalidArgumentError("no command given (try `nanonas --help`)");
  }
  NANONAS_RETURN_IF_ERROR(CheckLeftovers(app->remaining(), name));
  if (name == "submit") {
    cmd.kind = Command::Kind::kSubmit;
    NANONAS_RETURN_IF_ERROR(ParseSubmit(raw, &cmd));
    return cmd;
  }
  NANONAS_RETURN_IF_ERROR(ParseOther(name, raw, *subs[0], &cmd));
  return cmd;
}

}  // namespace nanonas
