// nanonas-worker: the stateless evaluation worker. See WorkerUsage() (--help).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/base/units.h"
#include "common/data/mapped.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"
#include "worker/service/child_process.h"
#include "worker/service/coordinator_link.h"
#include "worker/service/dataset_cache.h"
#include "worker/service/evaluation_child.h"
#include "worker/service/evaluation_runner.h"
#include "worker/service/worker_config.h"
#include "worker/service/worker_metrics.h"
#include "worker/service/worker_service.h"

namespace {

std::string MakeWorkerId() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  std::random_device rd;
  char suffix[8];
  std::snprintf(suffix, sizeof(suffix), "%04x", static_cast<unsigned>(rd() & 0xffff));
  return absl::StrCat(host, "-", getpid(), "-", suffix);
}

// Handle SIGTERM/SIGINT synchronously: block them before any thread starts.
sigset_t BlockStopSignals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  return stop_signals;
}

// Fills the defaults the flags left open (memory budget, slots, cache folder); *slots_source
// says where the slot count came from.
nanonas::WorkerConfig WithDefaults(const nanonas::WorkerConfig& flags, int cores,
                                   std::string* slots_source) {
  using namespace nanonas;
  WorkerConfig config = flags;
  if (config.memory_budget_bytes <= 0) config.memory_budget_bytes = DefaultMemoryBudget();
  *slots_source = "--slots";
  if (config.slots <= 0) {
    const DefaultSlotCount slots = DefaultSlots(cores);
    config.slots = slots.slots;
    *slots_source = slots.source;
  }
  if (config.cache_dir.empty()) {
    const char* tmp = getenv("TMPDIR");
    config.cache_dir = absl::StrCat(tmp ? tmp : "/tmp", "/nanonas-worker-cache-", getuid());
  }
  return config;
}

// Starts the Worker gRPC service on config.listen; null when it cannot listen. Sets *port.
std::unique_ptr<grpc::Server> StartGrpcServer(const nanonas::WorkerConfig& config,
                                              nanonas::WorkerServiceImpl* worker_service,
                                              int* port) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, grpc::InsecureServerCredentials(), port);
  builder.RegisterService(worker_service);
  return builder.BuildAndStart();
}

// The address the coordinator should call: --advertise, else the listen host (or, for a
// wildcard listen, the local address toward the coordinator or the host name) and `port`.
std::string AdvertisedAddress(const nanonas::WorkerConfig& config, int port) {
  using namespace nanonas;
  std::string listen_host;
  int listen_port = 0;
  (void)SplitHostPort(config.listen, &listen_host, &listen_port);
  std::string address = config.advertise;
  if (address.empty()) {
    std::string host = listen_host;
    if (host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]") {
      auto local = LocalAddressToward(config.coordinator);
      if (local.ok()) {
        host = *local;
      } else {
        char name[256] = {0};
        gethostname(name, sizeof(name) - 1);
        host = name;
        NANONAS_LOG(WARNING) << local.status().message() << "; advertising host name " << host;
      }
    }
    address = absl::StrCat(host, ":", port);
  }
  return address;
}

// Serves /metrics on config.metrics_listen; null (after saying why) when it cannot.
std::unique_ptr<prometheus::Exposer> ServeMetrics(
    const nanonas::WorkerConfig& config, const std::shared_ptr<prometheus::Registry>& registry) {
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(config.metrics_listen);
  } catch (const std::exception& e) {
    std::cerr << "nanonas-worker: cannot serve metrics on " << config.metrics_listen << ": "
              << e.what() << " (is the port free?)\n";
    return nullptr;
  }
  exposer->RegisterCollectable(registry);
  return exposer;
}

// This worker as the coordinator sees it (the address is set once the port is known).
nanonas::v1::WorkerDescription Describe(const nanonas::WorkerConfig& config, int cores) {
  nanonas::v1::WorkerDescription self;
  self.set_id(MakeWorkerId());
  self.set_cores(cores);
  self.set_slots(config.slots);
  self.set_memory_budget_bytes(config.memory_budget_bytes);
  self.set_version(NANONAS_VERSION);
  return self;
}

int RunWorker(const nanonas::WorkerConfig& flags) {
  using namespace nanonas;
  signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals = BlockStopSignals();

  const int cores = AvailableCores();
  std::string slots_source;
  const WorkerConfig config = WithDefaults(flags, cores, &slots_source);

  auto registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<prometheus::Exposer> exposer = ServeMetrics(config, registry);
  if (exposer == nullptr) return 3;
  WorkerMetrics metrics(*registry);

  DatasetCache cache(config.cache_dir, config.cache_bytes,
                     // The coordinator names a decoded dataset by its ContentHash: the SHA-256
                     // of the blob but its CRC trailer, then checked as a whole (structure, CRC)
                     // in place, without loading it.
                     [](const std::string& hex, const DatasetCache::Fetched& fetched) {
                       return fetched.body_sha256 == hex &&
                              MapDatasetFile(fetched.path, /*verify_checksum=*/true).ok();
                     });
  absl::Status cache_ok = cache.Init();
  if (!cache_ok.ok()) {
    std::cerr << "nanonas-worker: " << cache_ok.message() << "\n";
    return 2;
  }

  auto channel = grpc::CreateChannel(config.coordinator, grpc::InsecureChannelCredentials());
  std::unique_ptr<CoordinatorLink> link;
  // Fetched datasets stream to disk, not memory: the bound is the cache's, not the memory budget.
  const int64_t fetch_limit = config.cache_bytes;
  EvaluationRunnerOptions runner_options;
  runner_options.child_command = {SelfExecutablePath(), "--evaluate-child"};
  runner_options.slots = config.slots;
  runner_options.memory_budget_bytes = config.memory_budget_bytes;
  EvaluationRunner runner(
      runner_options, &cache,
      [&link, fetch_limit](const std::string& id, const DatasetCache::ChunkSink& sink) {
        return link->FetchDataset(id, fetch_limit, sink);
      },
      &metrics);

  nanonas::v1::WorkerDescription self = Describe(config, cores);

  int port = 0;
  WorkerServiceImpl worker_service(&runner, self);
  std::unique_ptr<grpc::Server> server = StartGrpcServer(config, &worker_service, &port);
  if (!server || port == 0) {
    std::cerr << "nanonas-worker: cannot listen on " << config.listen << " (is the port free?)\n";
    return 3;
  }

  if (auto* health = server->GetHealthCheckService()) {
    health->SetServingStatus(nanonas::v1::Worker::service_full_name(), true);
  }

  const std::string address = AdvertisedAddress(config, port);
  self.set_address(address);
  worker_service.SetDescription(self);

  NANONAS_LOG(INFO) << "nanonas-worker " << self.id() << " serving on " << config.listen
                    << " (port " << port << "), advertised as " << address << ", " << config.slots
                    << " slot(s) (from " << slots_source << "), memory budget "
                    << FormatBytes(config.memory_budget_bytes) << ", metrics on "
                    << config.metrics_listen << ", dataset cache " << config.cache_dir << " ("
                    << FormatBytes(config.cache_bytes) << ")";

  link =
      std::make_unique<CoordinatorLink>(channel, self, [&runner] { return runner.busy_slots(); });
  link->Start();

  int sig = 0;
  sigwait(&stop_signals, &sig);
  NANONAS_LOG(INFO) << "signal " << sig << ": leaving the coordinator and stopping";
  if (auto* health = server->GetHealthCheckService()) health->Shutdown();
  link->Stop();
  // In-flight Evaluate RPCs are cancelled by the shutdown deadline; their children are killed.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  link.reset();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "--evaluate-child") {
    return nanonas::EvaluationChildMain(argc - 2, argv + 2);
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  auto config = nanonas::ParseWorkerFlags(args);
  if (!config.ok()) {
    std::cerr << "nanonas-worker: " << config.status().message() << "\n";
    return 2;
  }
  if (config->help) {
    std::cout << nanonas::WorkerUsage();
    return 0;
  }
  return RunWorker(*config);
}
