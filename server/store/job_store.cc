#include "server/store/job_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace nanonas {

void WriteBatch::CreateJob(v1::Job job) { ops_.emplace_back(CreateJobOp{std::move(job)}); }

void WriteBatch::UpdateJob(v1::Job job) { ops_.emplace_back(UpdateJobOp{std::move(job)}); }

void WriteBatch::PutCandidate(std::string job_id, v1::Candidate candidate) {
  ops_.emplace_back(PutCandidateOp{std::move(job_id), std::move(candidate)});
}

void WriteBatch::AppendEvent(std::string job_id, v1::JobEvent event) {
  ops_.emplace_back(AppendEventOp{std::move(job_id), std::move(event)});
}

void WriteBatch::PutArtifact(ArtifactRecord artifact) {
  ops_.emplace_back(PutArtifactOp{std::move(artifact)});
}

namespace {

absl::Status NeedJobId(const std::string& job_id, size_t i, const char* op) {
  if (job_id.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("write batch operation ", i, " (", op, "): empty job id"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateBatch(const WriteBatch& batch) {
  for (size_t i = 0; i < batch.ops().size(); ++i) {
    const WriteBatch::Op& op = batch.ops()[i];
    if (auto* o = std::get_if<WriteBatch::CreateJobOp>(&op)) {
      NANONAS_RETURN_IF_ERROR(NeedJobId(o->job.id(), i, "CreateJob"));
    } else if (auto* o = std::get_if<WriteBatch::UpdateJobOp>(&op)) {
      NANONAS_RETURN_IF_ERROR(NeedJobId(o->job.id(), i, "UpdateJob"));
    } else if (auto* o = std::get_if<WriteBatch::PutCandidateOp>(&op)) {
      NANONAS_RETURN_IF_ERROR(NeedJobId(o->job_id, i, "PutCandidate"));
      if (o->candidate.sequence() < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("write batch operation ", i, " (PutCandidate): job ", o->job_id,
                         ": negative candidate sequence ", o->candidate.sequence()));
      }
    } else if (auto* o = std::get_if<WriteBatch::AppendEventOp>(&op)) {
      NANONAS_RETURN_IF_ERROR(NeedJobId(o->job_id, i, "AppendEvent"));
      if (o->event.kind_case() == v1::JobEvent::KIND_NOT_SET) {
        return absl::InvalidArgumentError(absl::StrCat(
            "write batch operation ", i, " (AppendEvent): job ", o->job_id, ": event has no kind"));
      }
      if (o->event.kind_case() == v1::JobEvent::kProgress) {
        return absl::InvalidArgumentError(
            absl::StrCat("write batch operation ", i, " (AppendEvent): job ", o->job_id,
                         ": progress events are live-only and never persisted"));
      }
    } else if (auto* o = std::get_if<WriteBatch::PutArtifactOp>(&op)) {
      NANONAS_RETURN_IF_ERROR(NeedJobId(o->artifact.job_id, i, "PutArtifact"));
      if (o->artifact.artifact.name().empty()) {
        return absl::InvalidArgumentError(absl::StrCat("write batch operation ", i,
                                                       " (PutArtifact): job ", o->artifact.job_id,
                                                       ": empty artifact name"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace nanonas
