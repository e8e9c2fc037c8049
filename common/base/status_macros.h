// Small helpers around absl::Status. Abseil 20220623 (Debian bookworm) has no RETURN_IF_ERROR.
#ifndef NANONAS_COMMON_BASE_STATUS_MACROS_H_
#define NANONAS_COMMON_BASE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define NANONAS_CONCAT_INNER_(a, b) a##b
#define NANONAS_CONCAT_(a, b) NANONAS_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define NANONAS_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::absl::Status nanonas_status_ = (expr);           \
    if (!nanonas_status_.ok()) return nanonas_status_; \
  } while (0)

// `lhs = value of expr` where expr is an absl::StatusOr<T>; returns its status on error.
//   NANONAS_ASSIGN_OR_RETURN(auto arch, BuildArchitecture(spec));
#define NANONAS_ASSIGN_OR_RETURN(lhs, expr) \
  NANONAS_ASSIGN_OR_RETURN_IMPL_(NANONAS_CONCAT_(nanonas_statusor_, __LINE__), lhs, expr)
#define NANONAS_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                   \
  if (!statusor.ok()) return statusor.status();             \
  lhs = std::move(statusor).value()

#endif  // NANONAS_COMMON_BASE_STATUS_MACROS_H_
