#include "server/coordinator/job_artifacts.h"

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/export/c_header.h"
#include "common/export/report.h"
#include "server/coordinator/job_state.h"

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;

std::vector<std::pair<std::string, std::string>> ModelFiles(const v1::Job& job,
                                                            const std::string& tflite) {
  ModelDescription model;
  model.job_id = job.id();
  model.name = job.spec().name();
  model.variant = job.spec().variant();
  model.k = job.result().k();
  model.c = job.result().c();
  model.classes = job.num_classes();
  model.input = InputShape{job.spec().input().height(), job.spec().input().width(),
                           job.spec().input().channels()};
  model.ram_bytes = job.final_training().ram_bytes();
  return {{"model.tflite", tflite}, {"model.h", ModelHeaderText(tflite, model)}};
}

absl::Status WriteJobArtifacts(const ArtifactStore& store, const v1::Job& job,
                               const std::string& tflite, v1::JobState end, absl::Time now,
                               std::vector<v1::Artifact>* written) {
  // The report describes the job as it ends, its model artifacts included; the picture first so
  // that the report lists it too.
  v1::Job final_job = job;
  final_job.clear_artifacts();
  if (!tflite.empty()) {
    for (const auto& [name, bytes] : ModelFiles(job, tflite)) {
      NANONAS_ASSIGN_OR_RETURN(v1::Artifact a, store.Write(job.id(), name, bytes));
      written->push_back(a);
      *final_job.add_artifacts() = a;
    }
  }
  final_job.set_state(end);
  *final_job.mutable_finished() = TimestampOf(now);
  NANONAS_ASSIGN_OR_RETURN(v1::Artifact svg,
                           store.Write(job.id(), "search-path.svg", SearchPathSvg(final_job)));
  *final_job.add_artifacts() = svg;
  NANONAS_ASSIGN_OR_RETURN(v1::Artifact report,
                           store.Write(job.id(), "report.json", SearchReportJson(final_job)));
  written->push_back(report);
  written->push_back(svg);
  return absl::OkStatus();
}

}  // namespace nanonas::coordinator
