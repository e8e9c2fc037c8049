// File helpers shared by dataset_registry.cc and dataset_registry_decode.cc; internal to them.
//
// Thread-safety: thread-safe functions.
#ifndef NANONAS_SERVER_COORDINATOR_DATASET_REGISTRY_INTERNAL_H_
#define NANONAS_SERVER_COORDINATOR_DATASET_REGISTRY_INTERNAL_H_

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"

namespace nanonas::coordinator::dataset_internal {

// The whole file; NOT_FOUND "cannot open <path>".
absl::StatusOr<std::string> ReadFile(const std::string& path);

// A suffix for temporary names, unique within this process and unlikely across processes.
std::string RandomSuffix();

// A tar may hold root/<class>/... or <class>/... directly: descends through a lone folder.
std::filesystem::path DatasetRoot(const std::filesystem::path& tree);

}  // namespace nanonas::coordinator::dataset_internal

#endif  // NANONAS_SERVER_COORDINATOR_DATASET_REGISTRY_INTERNAL_H_
