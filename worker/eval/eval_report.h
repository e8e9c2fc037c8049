// nanonas-eval's --export files in the service's formats: model.tflite and model.h from the
// finalized model, and report.json and search-path.svg of a one-candidate job (the candidate is
// the search path, its training the final training). Thread-compatible functions.
#ifndef NANONAS_WORKER_EVAL_EVAL_REPORT_H_
#define NANONAS_WORKER_EVAL_EVAL_REPORT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "common/base/sha256.h"  // Sha256Hex of the exported files
#include "nanonas/v1/nanonas.pb.h"
#include "worker/eval/eval_run.h"

namespace nanonas {

// The run as the coordinator would record a job. `artifacts`: name and bytes of the files the
// report lists. REQUIRES run.model (the final-training path).
nanonas::v1::Job ReportJob(const EvalRun& run,
                           const std::vector<std::pair<std::string, std::string>>& artifacts,
                           absl::Time finished, int64_t peak_memory_bytes);

// The files --export writes, in this order: model.tflite, model.h, report.json (listing the
// other three) and search-path.svg. REQUIRES run.model.
std::vector<std::pair<std::string, std::string>> ExportFiles(const EvalRun& run,
                                                             int64_t peak_memory_bytes);

}  // namespace nanonas

#endif  // NANONAS_WORKER_EVAL_EVAL_REPORT_H_
