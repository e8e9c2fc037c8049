// The web view's HTTP server (cpp-httplib): the pages (/, /jobs/{id}, /workers, /datasets, all
// the same embedded single-page app, assets.h), the static files under /static/, and the JSON
// API under /api/v1/ (json_api.h). Only GET (and HEAD); everything it serves is read-only.
// Pages carry a Content-Security-Policy allowing only this origin's scripts and styles.
//
// Thread-safe: Start once, Stop (or destroy) once; requests run on the server's thread pool.
#ifndef NANONAS_SERVER_WEB_WEB_SERVER_H_
#define NANONAS_SERVER_WEB_WEB_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/web/json_api.h"

namespace httplib {
class Server;
}

namespace nanonas::web {

// "HOST:PORT" ("[::1]:8080" for IPv6) -> host and port; INVALID_ARGUMENT naming what is wrong.
absl::Status ParseHostPort(const std::string& host_port, std::string* host, int* port);

class WebServer {
 public:
  explicit WebServer(WebApi* api);
  ~WebServer();  // Stop()

  // Binds HOST:PORT (port 0: any free port) and serves on a thread of its own. Returns the port.
  absl::StatusOr<int> Start(const std::string& host_port);
  // Stops the API's long polls, the listener and the request threads. Idempotent.
  void Stop();

 private:
  WebApi* const api_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace nanonas::web

#endif  // NANONAS_SERVER_WEB_WEB_SERVER_H_
