// One call for the final-training step: quantize a trained model, write its .tflite and C header,
// and score it. The search report (report.h) is written separately from the job record.
//
//   NANONAS_ASSIGN_OR_RETURN(ExportedModel m,
//       ExportModel(arch, weights, data, split.train, ModelArrayName(job.spec().name(), job.id())));
//   // m.tflite -> "model.tflite", m.c_header -> "model.h", m.tflite.size() == PredictFlashBytes(arch)
//   NANONAS_ASSIGN_OR_RETURN(double acc, QuantizedAccuracy(m.graph, test_data, test_indices));
#ifndef NANONAS_COMMON_EXPORT_EXPORT_MODEL_H_
#define NANONAS_COMMON_EXPORT_EXPORT_MODEL_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/arch/architecture.h"
#include "common/arch/weights.h"
#include "common/data/dataset.h"
#include "common/export/graph.h"
#include "nanonas/v1/nanonas.pb.h"

namespace nanonas {

struct ExportedModel {
  Graph graph;           // the quantized graph (run it with RunIntegerGraph / QuantizedAccuracy)
  std::string tflite;    // the .tflite file
  std::string c_header;  // the same bytes as an aligned C array
};

// Quantizes with the first kMinRepresentativeImages (150) of `train_indices` as the representative
// set (all of them if fewer than 150 would be an error: INVALID_ARGUMENT), then serialises.
absl::StatusOr<ExportedModel> ExportModel(const Architecture& arch, const ModelWeights& weights,
                                          const Dataset& data, const std::vector<int64_t>& train_indices,
                                          const std::string& array_name);

// A job's artifact files by their API names (proto Artifact.name), contents in memory:
// "model.tflite" and "model.h" when `model` is given, then "report.json" and "search-path.svg".
std::vector<std::pair<std::string, std::string>> JobArtifacts(const nanonas::v1::Job& job,
                                                              const ExportedModel* model);

}  // namespace nanonas

#endif  // NANONAS_COMMON_EXPORT_EXPORT_MODEL_H_
