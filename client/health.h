// `nanonas health`: the standard grpc.health.v1 check of a coordinator or a worker. Stateless;
// safe to call from any thread.
#ifndef NANONAS_CLIENT_HEALTH_H_
#define NANONAS_CLIENT_HEALTH_H_

#include <iosfwd>
#include <memory>
#include <string>

#include "client/cli.h"
#include "grpcpp/grpcpp.h"

namespace nanonas {

// `nanonas health`: the standard grpc.health.v1.Health/Check on `channel` (no generated health
// stubs needed: the two tiny messages are encoded by hand). 0 when SERVING, kExitNotFound for an
// unknown service, kExitServer otherwise.
int CheckHealth(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                const GlobalOptions& global, std::ostream& out, std::ostream& err);

}  // namespace nanonas

#endif  // NANONAS_CLIENT_HEALTH_H_
