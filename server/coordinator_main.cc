// nanonas-coordinator: the coordinator service (jobs, search, worker pool, datasets, metrics).
//
//   nanonas-coordinator --listen 0.0.0.0:50051 --metrics-listen 0.0.0.0:9090
//       --http-listen 0.0.0.0:8080 --state-dir /var/lib/nanonas
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/base/log.h"
#include "common/resources/resources.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "nanonas/v1/nanonas.grpc.pb.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/dataset_registry.h"
#include "server/coordinator/job_store_adapter.h"
#include "server/coordinator/metrics.h"
#include "server/grpc/coordinator_service.h"
#include "server/grpc/worker_connector.h"
#include "server/store/sqlite_job_store.h"
#include "server/web/json_api.h"
#include "server/web/web_server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "HOST:PORT for the gRPC API");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9090", "HOST:PORT for Prometheus /metrics");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:8080",
          "HOST:PORT for the web view (pages and the JSON API under /api/v1/); empty: none. When "
          "the default port is taken the coordinator runs without it (a warning); when the flag "
          "is given, that is an error");
ABSL_FLAG(std::string, state_dir, "", "folder for the job database and datasets (required)");
ABSL_FLAG(std::string, data_dir, "",
          "folder whose sub-folders clients may register as datasets (RegisterDatasetPath)");
ABSL_FLAG(int64_t, max_upload_bytes, int64_t{1} << 30, "largest dataset upload accepted, bytes");
ABSL_FLAG(int32_t, worker_timeout_ms, 3000,
          "a worker silent this long is lost and its evaluation dispatched elsewhere");
ABSL_FLAG(int32_t, max_attempts, 3, "dispatches of one candidate before it is FAILED");
ABSL_FLAG(bool, speculate, true,
          "idle worker slots evaluate the candidates a search will probably need next; results "
          "still reach the search in path order (same result as a sequential search)");

namespace {

namespace v1 = nanonas::v1;
namespace coord = nanonas::coordinator;

int Fail(const std::string& message) {
  std::fprintf(stderr, "nanonas-coordinator: %s\n", message.c_str());
  return 2;
}

// Flags are spelled with dashes (--state-dir; underscores are accepted too), `--flag value` or
// `--flag=value`. Rewrites `args` into absl's underscore names; returns what to fix for an unknown
// flag, a missing or an illegal value (absl would exit 1 there; usage errors exit 2), else "".
std::string NormalizeFlags(std::vector<std::string>& args) {
  for (size_t i = 1; i < args.size(); ++i) {
    std::string& a = args[i];
    if (a == "--") break;
    if (a.size() < 3 || a[0] != '-' || a[1] != '-') continue;
    const size_t end = std::min(a.find('='), a.size());
    for (size_t j = 2; j < end; ++j) {
      if (a[j] == '-') a[j] = '_';
    }
    const std::string name = a.substr(2, end - 2);
    // absl's own usage flags are not in its flag registry.
    static const char* const kUsageFlags[] = {"help",        "helpfull",       "helpshort",
                                              "helppackage", "helpon",         "helpmatch",
                                              "version",     "only_check_args"};
    if (std::find(std::begin(kUsageFlags), std::end(kUsageFlags), name) != std::end(kUsageFlags)) {
      continue;
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && absl::StartsWith(name, "no")) {
      const absl::CommandLineFlag* negated = absl::FindCommandLineFlag(name.substr(2));
      if (negated != nullptr && negated->IsOfType<bool>() && end == a.size()) continue;
    }
    std::string dashed = name;
    std::replace(dashed.begin(), dashed.end(), '_', '-');
    if (flag == nullptr) return absl::StrCat("unknown flag --", dashed, " (see --help)");
    const bool separate_value = end == a.size() && !flag->IsOfType<bool>();
    if (separate_value && i + 1 == args.size()) {
      return absl::StrCat("--", dashed, " needs a value (see --help)");
    }
    // Parsing here sets the flag as absl's parser will; an illegal value is a usage error.
    const std::string value =
        separate_value ? args[++i] : (end < a.size() ? a.substr(end + 1) : "");
    std::string error;
    if ((separate_value || end < a.size()) && !flag->ParseFrom(value, &error)) {
      return absl::StrCat("--", dashed, ": ", error, " (see --help)");
    }
  }
  return "";
}

void SetUpUsage() {
  absl::SetProgramUsageMessage(
      "the nanonas coordinator: runs NanoNAS searches on registered workers.\n"
      "  nanonas-coordinator --listen HOST:PORT --metrics-listen HOST:PORT "
      "[--http-listen HOST:PORT] --state-dir DIR [--data-dir DIR] [--max-upload-bytes N] "
      "[--worker-timeout-ms N] [--max-attempts N]\n"
      "  [--speculate=false]\n"
      "Flags may be spelled with dashes or underscores (--state-dir = --state_dir).");
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "coordinator_main");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
}

// What the flags say, checked.
struct Config {
  std::string state_dir;
  std::string data_dir;
  std::string http_listen;
  bool http_listen_given = false;
};

// Parses and checks the flags and creates the state folder; returns the usage error, else "".
std::string ParseConfig(int argc, char** argv, Config* config) {
  std::vector<std::string> args(argv, argv + argc);
  if (std::string error = NormalizeFlags(args); !error.empty()) return error;
  config->http_listen_given = std::any_of(args.begin(), args.end(), [](const std::string& a) {
    return a == "--http_listen" || absl::StartsWith(a, "--http_listen=");
  });
  std::vector<char*> arg_ptrs;
  for (auto& a : args) arg_ptrs.push_back(a.data());
  absl::ParseCommandLine(static_cast<int>(arg_ptrs.size()), arg_ptrs.data());
  const std::string state_dir = absl::GetFlag(FLAGS_state_dir);
  config->state_dir = state_dir;
  if (state_dir.empty()) return "--state-dir is required (where jobs and datasets live)";
  if (absl::GetFlag(FLAGS_max_upload_bytes) <= 0) return "--max-upload-bytes must be > 0";
  if (absl::GetFlag(FLAGS_worker_timeout_ms) <= 0) return "--worker-timeout-ms must be > 0";
  if (absl::GetFlag(FLAGS_max_attempts) <= 0) return "--max-attempts must be > 0";
  config->http_listen = absl::GetFlag(FLAGS_http_listen);
  if (!config->http_listen.empty()) {
    std::string host;
    int http_port = 0;
    if (auto st = nanonas::web::ParseHostPort(config->http_listen, &host, &http_port); !st.ok()) {
      return absl::StrCat("--http-listen: ", st.message());
    }
  }
  config->data_dir = absl::GetFlag(FLAGS_data_dir);
  if (!config->data_dir.empty() && !std::filesystem::is_directory(config->data_dir)) {
    return absl::StrCat("--data-dir ", config->data_dir, " is not a folder");
  }
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) return absl::StrCat("cannot create --state-dir ", state_dir, ": ", ec.message());
  return "";
}

// Signals are taken by one thread with sigwait; block them before any other thread starts.
sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

coord::CoordinatorOptions MakeOptions() {
  coord::CoordinatorOptions options;
  options.worker_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_worker_timeout_ms));
  options.max_attempts = absl::GetFlag(FLAGS_max_attempts);
  options.speculate = absl::GetFlag(FLAGS_speculate);
  options.heartbeat_interval_ms = std::max(100, absl::GetFlag(FLAGS_worker_timeout_ms) / 4);
  return options;
}

// Prepares a job's datasets with the registry (on the preparer's thread).
coord::PreparationDecoder RegistryDecoder(coord::DatasetRegistry* datasets) {
  return
      [datasets](const std::string& id, const nanonas::InputShape& input,
                 const coord::ImagesProgress& progress) -> absl::StatusOr<coord::PreparedDataset> {
        absl::StatusOr<coord::DecodedDataset> decoded = datasets->Decode(id, input, progress);
        if (!decoded.ok()) return decoded.status();
        const bool reused = decoded->reused;
        return coord::PreparedDataset{*std::move(decoded), reused, 0.0};
      };
}

coord::CoordinatorDeps MakeDeps(coord::JobStoreAdapter* store,
                                nanonas::grpc_layer::GrpcWorkerConnector* connector,
                                coord::CoordinatorMetrics* metrics, coord::ArtifactStore* artifacts,
                                coord::DatasetRegistry* datasets,
                                coord::DatasetPreparer* preparer) {
  coord::CoordinatorDeps deps;
  deps.store = store;
  deps.connector = connector;
  deps.metrics = metrics;
  deps.artifacts = artifacts;
  deps.lookup = [datasets](const std::string& id) { return datasets->Get(id); };
  deps.preparer = preparer;
  // The resource model (common/resources): MCU figures with Flash the exact size of the .tflite
  // file the final training exports, and the pure host-memory estimate of training.
  deps.resource_model =
      [](const nanonas::Architecture& arch) -> absl::StatusOr<nanonas::McuFigures> {
    return nanonas::ComputeMcuFigures(arch);
  };
  // Workers map the decoded dataset (decoded at the job's input, so never resized): its pixels
  // are file-backed, and the job's host memory limits anonymous memory, as the worker enforces.
  deps.host_memory_model = [](const nanonas::Architecture& arch, int64_t dataset_bytes,
                              const v1::EvaluationSettings& s) {
    nanonas::HostTrainingOptions options{s.batch_size(), 1};
    options.dataset_mapped = true;
    return nanonas::EstimateHostTrainingBytes(arch, dataset_bytes, options);
  };
  return deps;
}

// Starts the gRPC API on --listen; null when it cannot listen. Sets *port.
std::unique_ptr<grpc::Server> StartGrpcServer(nanonas::grpc_layer::CoordinatorService* service,
                                              int* port) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), grpc::InsecureServerCredentials(), port);
  builder.SetMaxReceiveMessageSize(32 << 20);
  builder.RegisterService(service);
  return builder.BuildAndStart();
}

// Starts the web view when --http-listen names one. Returns the note for the start line, or the
// error when an explicitly given --http-listen cannot be served (a default one only warns).
absl::StatusOr<std::string> StartWebView(nanonas::web::WebServer* web, const Config& config) {
  std::string web_note = "no web view";
  if (!config.http_listen.empty()) {
    auto web_port = web->Start(config.http_listen);
    if (!web_port.ok() && config.http_listen_given) return web_port.status();
    if (web_port.ok()) {
      web_note = absl::StrCat("web view on ", config.http_listen, " (port ", *web_port, ")");
    } else {
      NANONAS_LOG(WARNING) << "no web view: " << web_port.status().message()
                           << " (choose a port with --http-listen)";
    }
  }
  return web_note;
}

// Ticks the core every 200 ms and serves until SIGINT/SIGTERM (or the server stops), then stops
// the web view, the ticker and the signal thread, in that order.
void ServeUntilSignal(grpc::Server* server, nanonas::web::WebServer* web, coord::Coordinator* core,
                      sigset_t signals) {
  std::atomic<bool> stopping{false};
  absl::Notification stop_ticks;
  std::thread ticker([&] {
    while (!stop_ticks.WaitForNotificationWithTimeout(absl::Milliseconds(200))) core->Tick();
  });
  std::thread signal_waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (stopping.exchange(true)) return;
    NANONAS_LOG(INFO) << "signal " << sig << ": shutting down";
    server->GetHealthCheckService()->SetServingStatus(false);
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  });
  server->Wait();
  web->Stop();  // before the core goes: its handlers call it
  stop_ticks.Notify();
  ticker.join();
  if (!stopping.exchange(true)) pthread_kill(signal_waiter.native_handle(), SIGTERM);
  signal_waiter.join();
}

}  // namespace

int main(int argc, char** argv) {
  SetUpUsage();
  Config config;
  if (std::string error = ParseConfig(argc, argv, &config); !error.empty()) return Fail(error);
  const std::string& state_dir = config.state_dir;
  sigset_t signals = BlockStopSignals();

  auto sqlite =
      nanonas::OpenSqliteJobStore((std::filesystem::path(state_dir) / "nanonas.db").string());
  if (!sqlite.ok()) return Fail(std::string(sqlite.status().message()));
  const std::string artifact_root = (std::filesystem::path(state_dir) / "artifacts").string();
  coord::JobStoreAdapter store(std::move(sqlite).value(), artifact_root);
  coord::ArtifactStore artifacts(artifact_root);

  coord::DatasetRegistryOptions dopts;
  dopts.state_dir = state_dir;
  dopts.data_dir = config.data_dir;
  dopts.max_upload_bytes = absl::GetFlag(FLAGS_max_upload_bytes);
  coord::DatasetRegistry datasets(dopts);
  if (auto st = datasets.Init(); !st.ok()) return Fail(std::string(st.message()));

  auto registry = std::make_shared<prometheus::Registry>();
  coord::CoordinatorMetrics metrics(*registry);
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(absl::GetFlag(FLAGS_metrics_listen));
  } catch (const std::exception& e) {
    return Fail(absl::StrCat("cannot serve metrics on ", absl::GetFlag(FLAGS_metrics_listen), ": ",
                             e.what()));
  }
  exposer->RegisterCollectable(registry);

  nanonas::grpc_layer::GrpcWorkerConnector connector;
  // One preparation at a time: one decode already uses every core.
  auto preparer = std::make_unique<coord::ThreadPreparer>(RegistryDecoder(&datasets));
  auto core = std::make_unique<coord::Coordinator>(
      MakeOptions(), MakeDeps(&store, &connector, &metrics, &artifacts, &datasets, preparer.get()));
  // On every way out, before the core goes: stop taking results, then wait for the preparer's
  // thread (a decode that is running ends; its callbacks still find the core).
  struct StopPreparations {
    coord::Coordinator* core;
    std::unique_ptr<coord::ThreadPreparer>* preparer;
    ~StopPreparations() {
      core->Shutdown();
      preparer->reset();
    }
  } stop_preparations{core.get(), &preparer};
  if (auto st = core->Recover(); !st.ok()) {
    return Fail(absl::StrCat("cannot load the jobs in ", state_dir, ": ", st.message()));
  }

  nanonas::grpc_layer::CoordinatorService service(core.get(), &datasets);
  int port = 0;
  std::unique_ptr<grpc::Server> server = StartGrpcServer(&service, &port);
  if (server == nullptr || port == 0) {
    return Fail(absl::StrCat("cannot listen on ", absl::GetFlag(FLAGS_listen)));
  }
  // The web view (read-only): pages and the JSON API over the same core.
  nanonas::web::WebApi web_api(core.get(), &datasets);
  nanonas::web::WebServer web(&web_api);
  absl::StatusOr<std::string> web_note = StartWebView(&web, config);
  if (!web_note.ok()) {
    server->Shutdown();
    return Fail(absl::StrCat("--http-listen: ", web_note.status().message()));
  }
  server->GetHealthCheckService()->SetServingStatus(v1::Coordinator::service_full_name(), true);
  server->GetHealthCheckService()->SetServingStatus(true);
  NANONAS_LOG(INFO) << "nanonas-coordinator listening on " << absl::GetFlag(FLAGS_listen)
                    << " (port " << port << "), metrics on " << absl::GetFlag(FLAGS_metrics_listen)
                    << ", " << *web_note << ", state in " << state_dir;

  ServeUntilSignal(server.get(), &web, core.get(), signals);
  // Leaving: stop_preparations, then the core (it cancels evaluations still running on workers).
  // A job still preparing stays QUEUED / PREPARING in the store and prepares again at the start.
  NANONAS_LOG(INFO) << "nanonas-coordinator stopped";
  return 0;
}
