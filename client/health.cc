#include "client/health.h"

#include <chrono>
#include <ostream>

#include "client/commands.h"
#include "grpcpp/generic/generic_stub.h"

namespace nanonas {

int CheckHealth(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                const GlobalOptions& global, std::ostream& out, std::ostream& err) {
  // HealthCheckRequest { string service = 1; }
  std::string request;
  if (!service.empty()) {
    if (service.size() > 127) {
      err << "nanonas: health: service name too long\n";
      return kExitUsage;
    }
    request.push_back(0x0a);
    request.push_back(static_cast<char>(service.size()));
    request += service;
  }
  grpc::Slice slice(request);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(global.timeout_seconds * 1000)));
  auto call = stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", request_buffer, &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!status.ok()) {
    return ReportRpcError(status, service.empty() ? "health" : "health " + service, global, err);
  }
  // HealthCheckResponse { ServingStatus status = 1; }: UNKNOWN 0, SERVING 1, NOT_SERVING 2.
  std::vector<grpc::Slice> slices;
  (void)response.Dump(&slices);
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  int code = 0;
  if (bytes.size() >= 2 && bytes[0] == 0x08) code = static_cast<unsigned char>(bytes[1]);
  static const char* kNames[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
  const char* name = code >= 0 && code <= 3 ? kNames[code] : "UNKNOWN";
  if (global.json) {
    out << "{\"status\": \"" << name << "\"}\n";
  } else {
    out << global.server << (service.empty() ? "" : " " + service) << ": " << name << "\n";
  }
  return code == 1 ? kExitOk : kExitServer;
}

}  // namespace nanonas
