#include "server/grpc/coordinator_service.h"

#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/rpc/status.h"

namespace nanonas::grpc_layer {

namespace v1 = nanonas::v1;

grpc::Status CoordinatorService::SubmitJob(grpc::ServerContext*, const v1::SubmitJobRequest* req,
                                           v1::SubmitJobResponse* resp) {
  auto job = core_->SubmitJob(req->spec(), req->request_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  resp->set_job_id(job->id());
  *resp->mutable_job() = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::GetJob(grpc::ServerContext*, const v1::GetJobRequest* req,
                                        v1::Job* resp) {
  auto job = core_->GetJob(req->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *resp = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::ListJobs(grpc::ServerContext*, const v1::ListJobsRequest* req,
                                          v1::ListJobsResponse* resp) {
  std::vector<v1::JobState> states;
  for (int s : req->states()) states.push_back(static_cast<v1::JobState>(s));
  auto jobs = core_->ListJobs(states, req->limit());
  if (!jobs.ok()) return ToGrpcStatus(jobs.status());
  for (auto& j : *jobs) *resp->add_jobs() = std::move(j);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* req,
                                          grpc::ServerWriter<v1::JobEvent>* writer) {
  coordinator::Coordinator::WatchCursor cursor;
  cursor.sequence = req->after_sequence();
  while (!ctx->IsCancelled()) {
    bool ended = false;
    auto events = core_->NextEvents(req->job_id(), &cursor, absl::Milliseconds(500), &ended);
    if (!events.ok()) return ToGrpcStatus(events.status());
    for (const auto& ev : *events) {
      if (!writer->Write(ev)) return grpc::Status(grpc::StatusCode::CANCELLED, "watcher left");
    }
    if (ended) return grpc::Status::OK;
  }
  return grpc::Status(grpc::StatusCode::CANCELLED, "watcher left");
}

grpc::Status CoordinatorService::CancelJob(grpc::ServerContext*, const v1::CancelJobRequest* req,
                                           v1::CancelJobResponse* resp) {
  auto job = core_->CancelJob(req->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *resp->mutable_job() = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::UploadDataset(grpc::ServerContext*,
                                               grpc::ServerReader<v1::UploadDatasetRequest>* reader,
                                               v1::DatasetInfo* resp) {
  v1::UploadDatasetRequest msg;
  if (!reader->Read(&msg)) {
    return ToGrpcStatus(absl::InvalidArgumentError("empty upload: send the header first"));
  }
  if (!msg.has_header()) {
    return ToGrpcStatus(
        absl::InvalidArgumentError("the first upload message must be the header (name, size)"));
  }
  auto upload = datasets_->BeginUpload(msg.header());
  if (!upload.ok()) return ToGrpcStatus(upload.status());
  while (reader->Read(&msg)) {
    if (msg.has_header()) {
      return ToGrpcStatus(absl::InvalidArgumentError("a second upload header arrived mid-stream"));
    }
    absl::Status st = (*upload)->Append(msg.chunk());
    if (!st.ok()) return ToGrpcStatus(st);
  }
  auto info = (*upload)->Finish();
  if (!info.ok()) return ToGrpcStatus(info.status());
  *resp = *std::move(info);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::RegisterDatasetPath(grpc::ServerContext*,
                                                     const v1::RegisterDatasetPathRequest* req,
                                                     v1::DatasetInfo* resp) {
  auto info = datasets_->RegisterPath(req->path());
  if (!info.ok()) return ToGrpcStatus(info.status());
  *resp = *std::move(info);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::GetDataset(grpc::ServerContext*, const v1::GetDatasetRequest* req,
                                            v1::DatasetInfo* resp) {
  auto info = datasets_->Get(req->id());
  if (!info.ok()) return ToGrpcStatus(info.status());
  *resp = *std::move(info);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::ListArtifacts(grpc::ServerContext*,
                                               const v1::ListArtifactsRequest* req,
                                               v1::ListArtifactsResponse* resp) {
  auto list = core_->ListArtifacts(req->job_id());
  if (!list.ok()) return ToGrpcStatus(list.status());
  for (const auto& a : *list) *resp->add_artifacts() = a;
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DownloadArtifact(grpc::ServerContext* ctx,
                                                  const v1::DownloadArtifactRequest* req,
                                                  grpc::ServerWriter<v1::ArtifactChunk>* writer) {
  constexpr int64_t kChunkBytes = 1 << 20;
  // The first read checks the job and the name before anything is sent.
  for (int64_t offset = 0;; offset += kChunkBytes) {
    auto bytes = core_->ReadArtifact(req->job_id(), req->name(), offset, kChunkBytes);
    if (!bytes.ok()) return ToGrpcStatus(bytes.status());
    if (bytes->empty() && offset > 0) break;
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    v1::ArtifactChunk chunk;
    chunk.set_data(std::move(*bytes));
    const bool last = static_cast<int64_t>(chunk.data().size()) < kChunkBytes;
    if (!writer->Write(chunk)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    if (last) break;
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::RegisterWorker(grpc::ServerContext*,
                                                const v1::RegisterWorkerRequest* req,
                                                v1::RegisterWorkerResponse* resp) {
  auto r = core_->RegisterWorker(req->worker());
  if (!r.ok()) return ToGrpcStatus(r.status());
  *resp = *std::move(r);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* req,
                                           v1::HeartbeatResponse* resp) {
  *resp = core_->Heartbeat(*req);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::LeaveWorker(grpc::ServerContext*, const v1::LeaveRequest* req,
                                             v1::LeaveResponse*) {
  return ToGrpcStatus(core_->LeaveWorker(req->worker_id()));
}

grpc::Status CoordinatorService::FetchDataset(grpc::ServerContext* ctx,
                                              const v1::FetchDatasetRequest* req,
                                              grpc::ServerWriter<v1::DatasetChunk>* writer) {
  auto path = datasets_->DecodedPath(req->id());
  if (!path.ok()) return ToGrpcStatus(path.status());
  std::ifstream in(*path, std::ios::binary | std::ios::ate);
  if (!in) return ToGrpcStatus(absl::InternalError(absl::StrCat("cannot read ", *path)));
  const int64_t total = static_cast<int64_t>(in.tellg());
  in.seekg(0);
  std::vector<char> buf(1 << 20);
  bool first = true;
  int64_t sent = 0;
  while (sent < total || first) {
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "fetch cancelled");
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    if (n <= 0 && !first) break;
    v1::DatasetChunk chunk;
    chunk.set_data(buf.data(), static_cast<size_t>(std::max<std::streamsize>(n, 0)));
    if (first) chunk.set_total_bytes(total);
    first = false;
    sent += n;
    if (!writer->Write(chunk)) return grpc::Status(grpc::StatusCode::CANCELLED, "fetch cancelled");
  }
  return grpc::Status::OK;
}

}  // namespace nanonas::grpc_layer
