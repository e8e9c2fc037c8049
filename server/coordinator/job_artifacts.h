// What happens to a finished job's model: the files written for it (model.tflite and model.h when
// the job exported a model, then search-path.svg and report.json describing the job as it ends).
// ModelFiles is the one place that turns a model into files. Pure apart from the ArtifactStore
// writes; thread-safe as ArtifactStore is.
#ifndef NANONAS_SERVER_COORDINATOR_JOB_ARTIFACTS_H_
#define NANONAS_SERVER_COORDINATOR_JOB_ARTIFACTS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "nanonas/v1/nanonas.pb.h"
#include "server/coordinator/artifact_store.h"

namespace nanonas::coordinator {

// (name, bytes) of the model files of `job` for the exported model `tflite`: model.tflite and
// model.h (a C array named after the job, with a comment describing the model).
std::vector<std::pair<std::string, std::string>> ModelFiles(const nanonas::v1::Job& job,
                                                            const std::string& tflite);

// Writes the artifacts of `job` as it ends in state `end` at `now`: the model files (when
// `tflite` is not empty), then the search path picture and the report (which lists the others).
// `written` receives the artifacts in the order they are listed in the job (model.tflite,
// model.h, report.json, search-path.svg), also those written before an error.
absl::Status WriteJobArtifacts(const ArtifactStore& store, const nanonas::v1::Job& job,
                               const std::string& tflite, nanonas::v1::JobState end, absl::Time now,
                               std::vector<nanonas::v1::Artifact>* written);

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_JOB_ARTIFACTS_H_
