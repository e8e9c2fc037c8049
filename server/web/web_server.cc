#include "server/web/web_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "server/web/assets.h"

namespace nanonas::web {

namespace {

constexpr char kPageSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

// The single-page app's shell: every page (the script draws it from the path).
constexpr char kIndexHtml[] = R"(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nanonas</title>
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<header><a class="brand" href="/">nanonas</a>
<nav><a href="/">Jobs</a> <a href="/workers">Workers</a> <a href="/datasets">Datasets</a></nav>
</header>
<main id="app" data-page="loading"><p>Loading&hellip;</p></main>
<noscript>This page needs JavaScript; the JSON API is under /api/v1/.</noscript>
<script src="/static/app.js"></script>
</body>
</html>
)";

bool IsPage(const std::string& path) {
  if (path == "/" || path == "/workers" || path == "/datasets") return true;
  return absl::StartsWith(path, "/jobs/") && path.size() > 6 &&
         path.find('/', 6) == std::string::npos;
}

void Send(const ApiResponse& r, httplib::Response& res) {
  res.status = r.status;
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Cache-Control", "no-store");
  for (const auto& [k, v] : r.headers) res.set_header(k, v);
  if (!r.stream.has_value()) {
    res.set_content(r.body, r.content_type);
    return;
  }
  auto read = r.stream->read;
  res.set_content_provider(
      static_cast<size_t>(r.stream->size), r.content_type,
      [read](size_t offset, size_t length, httplib::DataSink& sink) {
        auto chunk = read(static_cast<int64_t>(offset), static_cast<int64_t>(length));
        if (!chunk.ok() || chunk->empty()) {
          // The file changed or vanished under the download: cut the connection (the client sees
          // a short body, never wrong bytes).
          NANONAS_LOG(WARNING) << "artifact download stopped at byte " << offset << ": "
                               << (chunk.ok() ? "file shorter than listed"
                                              : std::string(chunk.status().message()));
          return false;
        }
        return sink.write(chunk->data(), chunk->size());
      });
}

}  // namespace

absl::Status ParseHostPort(const std::string& host_port, std::string* host, int* port) {
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", host_port, "' is not HOST:PORT (e.g. 127.0.0.1:8080)"));
  }
  std::string h = host_port.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  int p = -1;
  if (h.empty() || !absl::SimpleAtoi(host_port.substr(colon + 1), &p) || p < 0 || p > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", host_port, "' is not HOST:PORT with a port in 0..65535"));
  }
  *host = h;
  *port = p;
  return absl::OkStatus();
}

WebServer::WebServer(WebApi* api) : api_(api) {}

WebServer::~WebServer() { Stop(); }

absl::StatusOr<int> WebServer::Start(const std::string& host_port) {
  std::string host;
  int port = 0;
  if (auto st = ParseHostPort(host_port, &host, &port); !st.ok()) return st;
  server_ = std::make_unique<httplib::Server>();
  // Long polls hold a thread each: more threads than the default.
  server_->new_task_queue = [] { return new httplib::ThreadPool(32); };
  server_->set_payload_max_length(64 << 10);  // only GETs are served
  // httplib's default also sets SO_REUSEPORT, which lets a second coordinator bind the same port
  // and take half of the connections: SO_REUSEADDR only (a restart may rebind at once).
  server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server_->Get(".*", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string& path = req.path;
    if (absl::StartsWith(path, "/api/")) {
      std::map<std::string, std::string> params;
      for (const auto& [k, v] : req.params) params.emplace(k, v);  // first value wins
      Send(api_->Get(path, params), res);
      return;
    }
    res.set_header("X-Content-Type-Options", "nosniff");
    if (IsPage(path)) {
      res.set_header("Content-Security-Policy", kPageSecurityPolicy);
      res.set_header("Cache-Control", "no-store");
      res.set_content(kIndexHtml, "text/html; charset=utf-8");
      return;
    }
    if (const EmbeddedAsset* a = FindAsset(path); a != nullptr) {
      res.set_content(a->data, a->size, a->content_type);
      return;
    }
    res.status = 404;
    res.set_content(absl::StrCat("not found: ", path, "\n"), "text/plain; charset=utf-8");
  });
  const int bound =
      port == 0 ? server_->bind_to_any_port(host) : (server_->bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    server_.reset();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", host_port));
  }
  thread_ = std::thread([s = server_.get()] { s->listen_after_bind(); });
  // stop() is a no-op until the loop runs: wait for it, so that Stop() never misses it.
  for (int i = 0; i < 2000 && !server_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return bound;
}

void WebServer::Stop() {
  if (!server_) return;
  api_->Stop();
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

}  // namespace nanonas::web
