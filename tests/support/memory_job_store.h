// An in-memory JobStore for tests: the same contract as the SQLite store, nothing on disk.
#ifndef NANONAS_TESTS_SUPPORT_MEMORY_JOB_STORE_H_
#define NANONAS_TESTS_SUPPORT_MEMORY_JOB_STORE_H_

#include <memory>

#include "server/store/job_store.h"

namespace nanonas {

std::unique_ptr<JobStore> NewInMemoryJobStore();

}  // namespace nanonas

#endif  // NANONAS_TESTS_SUPPORT_MEMORY_JOB_STORE_H_
