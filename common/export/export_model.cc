#include "common/export/export_model.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/export/c_header.h"
#include "common/export/quantize.h"
#include "common/export/report.h"
#include "common/export/tflite_writer.h"

namespace nanonas {

absl::StatusOr<ExportedModel> ExportModel(const Architecture& arch, const ModelWeights& weights,
                                          const Dataset& data, const std::vector<int64_t>& train_indices,
                                          const std::string& array_name) {
  const size_t n = std::min<size_t>(train_indices.size(), kMinRepresentativeImages);
  const std::vector<int64_t> representative(train_indices.begin(), train_indices.begin() + n);
  ExportedModel m;
  NANONAS_ASSIGN_OR_RETURN(m.graph, QuantizeModel(arch, weights, data, representative));
  NANONAS_ASSIGN_OR_RETURN(m.tflite, SerializeTflite(m.graph));
  m.c_header = MakeCHeader(m.tflite, array_name,
                           absl::StrCat(DescribeArchitecture(arch), "\nfull-integer uint8 TFLite model"));
  return m;
}

std::vector<std::pair<std::string, std::string>> JobArtifacts(const nanonas::v1::Job& job,
                                                              const ExportedModel* model) {
  std::vector<std::pair<std::string, std::string>> files;
  if (model != nullptr) {
    files.emplace_back("model.tflite", model->tflite);
    files.emplace_back("model.h", model->c_header);
  }
  files.emplace_back("report.json", SearchReportJson(job));
  files.emplace_back("search-path.svg", SearchPathSvg(job));
  return files;
}

}  // namespace nanonas
