// The evaluation child process: `nanonas-worker --evaluate-child --dataset-file PATH
// --memory-limit BYTES [--test-dataset-file PATH]` reads one EvaluateRequest frame from stdin,
// trains the candidate on the dataset file (a SerializeDataset blob, memory-mapped in place by
// MapDatasetFile: its pixels are shared file-backed pages, copied to the heap only when resized
// to the request's input) with request.threads engine threads, and writes progress and epoch
// events and finally one result to stdout (see child_protocol.h). A candidate whose estimated
// peak ANONYMOUS memory (EstimateHostTrainingBytes, dataset_mapped unless resized) exceeds the
// limit ends HOST_INFEASIBLE before any training. One evaluation per process; not for threads.
#ifndef NANONAS_WORKER_SERVICE_EVALUATION_CHILD_H_
#define NANONAS_WORKER_SERVICE_EVALUATION_CHILD_H_

#include <cstdint>
#include <functional>
#include <string>

#include "common/arch/architecture.h"
#include "common/data/dataset.h"
#include "nanonas/v1/nanonas.pb.h"
#include "worker/engine/trainer.h"

namespace nanonas {

// Runs one evaluation in this process. Events other than the result go to `emit`. Never throws;
// every error ends as a FAILED (or HOST_INFEASIBLE) result with the reason.
// A final training (request.final_training) keeps the best validation epoch and finalizes it with
// FinalizeModel (common/export/finalize.h, the path nanonas-eval shares: 150 seeded-shuffled
// training images calibrate the full-integer uint8 model) and returns the .tflite bytes, the
// weights, the quantized validation accuracy and, with `test_dataset`, the float and quantized
// test accuracy.
nanonas::v1::EvaluateResult EvaluateCandidate(
    const nanonas::v1::EvaluateRequest& request, const Dataset& dataset, int64_t memory_limit,
    const std::function<void(const nanonas::v1::EvaluateEvent&)>& emit,
    const Dataset* test_dataset = nullptr);

// The estimated peak anonymous memory (bytes) of training `arch` on `data` in this process: the
// figure EvaluateCandidate compares with its memory limit (and the runner's RssAnon watchdog
// enforces). `data` is `dataset` itself or its copy resized to the architecture's input. Pixels
// mapped from a file (MapDatasetFile) are file-backed, shared and reclaimable, so not counted;
// owned pixels (a resized copy, a dataset decoded on the heap, both when resized) are. It is
// EstimateHostTrainingBytes (host_memory.h) plus the owned original when resized, plus this
// process's anonymous memory measured now beyond the 32 MiB baseline that estimate assumes.
int64_t EstimateChildAnonymousBytes(const Architecture& arch, const Dataset& dataset,
                                    const Dataset& data, const TrainOptions& options);

// main() of the child: argv after the --evaluate-child flag. Returns the exit code (0 when a
// result was written, 2 on bad arguments, 3 when the pipe broke).
int EvaluationChildMain(int argc, char** argv);

}  // namespace nanonas

#endif  // NANONAS_WORKER_SERVICE_EVALUATION_CHILD_H_
