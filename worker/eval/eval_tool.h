// nanonas-eval as a library: evaluates one NanoNAS candidate (k, c) on a local dataset, or prints
// only the MCU resource model's figures for it; with the final-training path (--final, --export,
// --test-data) it keeps the best epoch's weights and finalizes them with FinalizeModel
// (common/export/finalize.h), the worker service's own export path. eval_main.cc maps its flags
// to EvalOptions and returns RunEvalTool's exit status. Prints to stdout and stderr and installs
// a SIGINT handler (cancels the training): call from main() only.
#ifndef NANONAS_WORKER_EVAL_EVAL_TOOL_H_
#define NANONAS_WORKER_EVAL_EVAL_TOOL_H_

#include <string>

#include "worker/eval/eval_run.h"

namespace nanonas {

inline constexpr int kEvalExitFailure = 1;  // data, training, export, test classes, calibration
inline constexpr int kEvalExitUsage = 2;    // a bad command line

// Prints "nanonas-eval: <message>" and "(try --help)" to stderr; returns kEvalExitUsage.
int EvalUsageError(const std::string& message);

// Runs the tool; returns its exit status (0 success).
int RunEvalTool(const EvalOptions& options);

}  // namespace nanonas

#endif  // NANONAS_WORKER_EVAL_EVAL_TOOL_H_
