// Minimal leveled logging to stderr (Abseil 20220623 has no absl/log).
//   NANONAS_LOG(INFO) << "worker joined " << id;
#ifndef NANONAS_COMMON_BASE_LOG_H_
#define NANONAS_COMMON_BASE_LOG_H_

#include <sstream>

namespace nanonas {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below this level are dropped. Default kInfo; NANONAS_LOG_LEVEL=debug|info|warning|error.
LogLevel MinLogLevel();
void SetMinLogLevel(LogLevel level);

// One log line; written (with a timestamp and level) when destroyed. Thread-safe.
class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

}  // namespace nanonas

#define NANONAS_LOG_LEVEL_DEBUG ::nanonas::LogLevel::kDebug
#define NANONAS_LOG_LEVEL_INFO ::nanonas::LogLevel::kInfo
#define NANONAS_LOG_LEVEL_WARNING ::nanonas::LogLevel::kWarning
#define NANONAS_LOG_LEVEL_ERROR ::nanonas::LogLevel::kError
#define NANONAS_LOG(level)                                    \
  if (NANONAS_LOG_LEVEL_##level < ::nanonas::MinLogLevel()) { \
  } else                                                      \
    ::nanonas::LogMessage(NANONAS_LOG_LEVEL_##level, __FILE__, __LINE__).stream()

#endif  // NANONAS_COMMON_BASE_LOG_H_
