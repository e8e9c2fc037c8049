// What nanonas-eval prints: the resource model's figures (--estimate-only), the data line and the
// epoch lines while training, and the run's result as text or as one JSON object (--json; the
// keys and their order are part of the tool's interface). Thread-compatible functions.
#ifndef NANONAS_WORKER_EVAL_EVAL_OUTPUT_H_
#define NANONAS_WORKER_EVAL_EVAL_OUTPUT_H_

#include <ostream>
#include <string>

#include "common/arch/mcu_model.h"
#include "nlohmann/json.hpp"
#include "worker/eval/eval_run.h"

namespace nanonas {

// {"macc", "flash_bytes", "ram_bytes"}.
nlohmann::ordered_json ResourcesJson(const McuResources& r);
// "MACC 1.2M (...), Flash ... (... B, exported file), RAM ... (... B)".
std::string ResourcesText(const McuResources& r);

// The line printed before training: data, images, split, classes, hash, load time.
std::string DataLine(const EvalRun& run);
// The line printed after each epoch (text output).
std::string EpochLine(const EpochStats& e, int epochs);

// The run's result; `run.model` and `run.files` when the final-training path ran.
void PrintResultJson(const EvalRun& run, std::ostream& out);
void PrintResultText(const EvalRun& run, std::ostream& out);

}  // namespace nanonas

#endif  // NANONAS_WORKER_EVAL_EVAL_OUTPUT_H_
