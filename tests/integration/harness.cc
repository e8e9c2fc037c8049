#include "tests/integration/harness.h"

#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"

namespace nanonas::integration {

namespace fs = std::filesystem;

Process::Process(std::vector<std::string> argv, std::string log_path)
    : log_path_(std::move(log_path)) {
  pid_ = fork();
  if (pid_ == 0) {
    int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    // Die with the test runner.
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
}

Process::~Process() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool Process::Alive() {
  if (reaped_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) reaped_ = true;
  return !reaped_;
}

void Process::Signal(int sig) {
  if (!reaped_) kill(pid_, sig);
}

int Process::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      return status;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return -1;
}

std::string Process::LogTail(size_t bytes) const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > bytes ? s.substr(s.size() - bytes) : s;
}

std::vector<pid_t> Process::Children() const {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e.path().filename().string(), &pid)) continue;
    std::ifstream stat(e.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const size_t close_paren = line.rfind(')');
    if (close_paren == std::string::npos) continue;
    std::vector<std::string> fields =
        absl::StrSplit(line.substr(close_paren + 2), ' ', absl::SkipEmpty());
    int ppid = 0;
    // fields[0] = state, fields[1] = ppid; zombies do not count as running training.
    if (fields.size() > 1 && absl::SimpleAtoi(fields[1], &ppid) && ppid == pid_ &&
        fields[0] != "Z") {
      out.push_back(pid);
    }
  }
  return out;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

bool HealthServing(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  // HealthCheckRequest{service = 1}; HealthCheckResponse{status = 1}, SERVING = 1.
  std::string req;
  if (!service.empty()) {
    req.push_back(0x0a);
    req.push_back(static_cast<char>(service.size()));
    req += service;
  }
  grpc::Slice slice(req);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   std::lock_guard<std::mutex> lock(mu);
                   status = s;
                   done = true;
                   cv.notify_all();
                 });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  if (!status.ok()) return false;
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return bytes.size() == 2 && bytes[0] == 0x08 && bytes[1] == 0x01;
}

namespace {

// One request, one response, over a raw bidi stream (callback API).
class OneShotBidi : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit OneShotBidi(std::string request) : request_(std::move(request)) {}
  void Run() {
    grpc::Slice slice(request_);
    out_ = grpc::ByteBuffer(&slice, 1);
    StartWrite(&out_);
    StartRead(&in_);
    StartCall();
  }
  void OnWriteDone(bool) override { StartWritesDone(); }
  void OnReadDone(bool ok) override {
    if (ok) {
      std::vector<grpc::Slice> slices;
      if (in_.Dump(&slices).ok()) {
        for (const auto& s : slices) {
          response_.append(reinterpret_cast<const char*>(s.begin()), s.size());
        }
      }
    }
  }
  void OnDone(const grpc::Status& s) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = s;
    done_ = true;
    cv_.notify_all();
  }
  grpc::Status Await() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
    return status_;
  }
  const std::string& response() const { return response_; }

 private:
  std::string request_, response_;
  grpc::ByteBuffer out_, in_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  grpc::Status status_;
};

}  // namespace

absl::StatusOr<std::vector<std::string>> ReflectionServices(
    const std::shared_ptr<grpc::Channel>& channel) {
  // ServerReflectionRequest{list_services = 7: "*"}.
  std::string req = {0x3a, 0x01, '*'};
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  OneShotBidi call(req);
  stub.PrepareBidiStreamingCall(&ctx,
                                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                grpc::StubOptions(), &call);
  call.Run();
  absl::Status st = FromGrpcStatus(call.Await());
  if (!st.ok()) return st;
  // ServerReflectionResponse{list_services_response = 6 {service = 1 {name = 1}}}: pull the
  // printable names out of the nested messages.
  std::vector<std::string> names;
  const std::string& r = call.response();
  for (size_t i = 0; i + 1 < r.size(); ++i) {
    if (r[i] == 0x0a) {  // field 1, length-delimited
      const size_t len = static_cast<unsigned char>(r[i + 1]);
      if (i + 2 + len <= r.size() && len > 0) {
        std::string name = r.substr(i + 2, len);
        if (std::all_of(name.begin(), name.end(), [](char ch) {
              return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_';
            })) {
          names.push_back(name);
        }
      }
    }
  }
  return names;
}

bool WaitHealthy(const std::string& address, absl::Duration timeout) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (HealthServing(channel)) return true;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return false;
}

absl::StatusOr<std::string> HttpGet(const std::string& host_port, const std::string& path) {
  std::vector<std::string> hp = absl::StrSplit(host_port, ':');
  int port = 0;
  if (hp.size() != 2 || !absl::SimpleAtoi(hp[1], &port)) {
    return absl::InvalidArgumentError("bad host:port " + host_port);
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, hp[0].c_str(), &addr.sin_addr);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return absl::UnavailableError("cannot connect to " + host_port);
  }
  const std::string req =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", host_port, "\r\nConnection: close\r\n\r\n");
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return absl::UnavailableError("write failed");
  }
  std::string resp;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) resp.append(buf, static_cast<size_t>(n));
  close(fd);
  const size_t body = resp.find("\r\n\r\n");
  if (body == std::string::npos) return absl::UnavailableError("no HTTP response");
  if (resp.rfind("HTTP/1.1 200", 0) != 0 && resp.rfind("HTTP/1.0 200", 0) != 0) {
    return absl::UnavailableError("HTTP error: " + resp.substr(0, resp.find("\r\n")));
  }
  return resp.substr(body + 4);
}

absl::Status PromtoolCheck(const std::string& text, const std::string& scratch_path) {
  {
    std::ofstream out(scratch_path);
    out << text;
  }
  const std::string cmd =
      "promtool check metrics < " + scratch_path + " > " + scratch_path + ".out 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream in(scratch_path + ".out");
  std::stringstream ss;
  ss << in.rdbuf();
  if (rc != 0 || !ss.str().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("promtool (rc ", rc, "): ", ss.str()));
  }
  return absl::OkStatus();
}

double MetricValue(const std::string& text, const std::string& name_with_labels) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name_with_labels + " ", 0) == 0) {
      double v = -1;
      if (absl::SimpleAtod(line.substr(name_with_labels.size() + 1), &v)) return v;
    }
  }
  return -1;
}

void WriteStripes(const std::string& root, int per_class, int size, int classes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> noise(-40, 40);
  const char* names[] = {"horizontal", "vertical"};
  for (int cls = 0; cls < classes; ++cls) {
    fs::create_directories(fs::path(root) / names[cls]);
    for (int i = 0; i < per_class; ++i) {
      cv::Mat img(size, size, CV_8UC3);
      const int phase = static_cast<int>(rng() % 4);
      for (int y = 0; y < size; ++y) {
        for (int x = 0; x < size; ++x) {
          const int coord = cls == 0 ? y : x;
          const int base = ((coord + phase) / 2) % 2 ? 220 : 35;
          for (int ch = 0; ch < 3; ++ch) {
            img.at<cv::Vec3b>(y, x)[ch] = cv::saturate_cast<uchar>(base + noise(rng));
          }
        }
      }
      cv::imwrite((fs::path(root) / names[cls] / (std::to_string(i) + ".png")).string(), img);
    }
  }
}

std::string TarFolder(const std::string& root, const std::string& top) {
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::string out;
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open(
      a, &out, nullptr,
      [](struct archive*, void* client, const void* buf, size_t n) -> la_ssize_t {
        static_cast<std::string*>(client)->append(static_cast<const char*>(buf), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string data = ss.str();
    const std::string name = top + "/" + fs::relative(f, root).string();
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_write_header(a, e);
    archive_write_data(a, data.data(), data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

absl::StatusOr<nanonas::v1::DatasetInfo> Upload(nanonas::v1::Coordinator::Stub* stub,
                                                const std::string& bytes, int64_t announced) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  nanonas::v1::DatasetInfo info;
  auto writer = stub->UploadDataset(&ctx, &info);
  nanonas::v1::UploadDatasetRequest header;
  header.mutable_header()->set_name("stripes.tar");
  header.mutable_header()->set_format("tar");
  header.mutable_header()->set_size_bytes(announced);
  if (writer->Write(header)) {
    for (size_t pos = 0; pos < bytes.size(); pos += 65536) {
      nanonas::v1::UploadDatasetRequest chunk;
      chunk.set_chunk(bytes.substr(pos, 65536));
      if (!writer->Write(chunk)) break;  // the server already answered
    }
  }
  writer->WritesDone();
  absl::Status st = FromGrpcStatus(writer->Finish());
  if (!st.ok()) return st;
  return info;
}

}  // namespace nanonas::integration
