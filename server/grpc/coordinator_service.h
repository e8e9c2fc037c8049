// nanonas.v1.Coordinator over gRPC's sync API: each handler unpacks the request, calls the
// transport-free core (server/coordinator) and converts its absl::Status with ToGrpcStatus.
#ifndef NANONAS_SERVER_GRPC_COORDINATOR_SERVICE_H_
#define NANONAS_SERVER_GRPC_COORDINATOR_SERVICE_H_

#include "nanonas/v1/nanonas.grpc.pb.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/dataset_registry.h"

namespace nanonas::grpc_layer {

class CoordinatorService final : public nanonas::v1::Coordinator::Service {
 public:
  CoordinatorService(coordinator::Coordinator* core, coordinator::DatasetRegistry* datasets)
      : core_(core), datasets_(datasets) {}

  grpc::Status SubmitJob(grpc::ServerContext* ctx, const nanonas::v1::SubmitJobRequest* req,
                         nanonas::v1::SubmitJobResponse* resp) override;
  grpc::Status GetJob(grpc::ServerContext* ctx, const nanonas::v1::GetJobRequest* req,
                      nanonas::v1::Job* resp) override;
  grpc::Status ListJobs(grpc::ServerContext* ctx, const nanonas::v1::ListJobsRequest* req,
                        nanonas::v1::ListJobsResponse* resp) override;
  grpc::Status WatchJob(grpc::ServerContext* ctx, const nanonas::v1::WatchJobRequest* req,
                        grpc::ServerWriter<nanonas::v1::JobEvent>* writer) override;
  grpc::Status CancelJob(grpc::ServerContext* ctx, const nanonas::v1::CancelJobRequest* req,
                         nanonas::v1::CancelJobResponse* resp) override;
  grpc::Status UploadDataset(grpc::ServerContext* ctx,
                             grpc::ServerReader<nanonas::v1::UploadDatasetRequest>* reader,
                             nanonas::v1::DatasetInfo* resp) override;
  grpc::Status RegisterDatasetPath(grpc::ServerContext* ctx,
                                   const nanonas::v1::RegisterDatasetPathRequest* req,
                                   nanonas::v1::DatasetInfo* resp) override;
  grpc::Status GetDataset(grpc::ServerContext* ctx, const nanonas::v1::GetDatasetRequest* req,
                          nanonas::v1::DatasetInfo* resp) override;
  grpc::Status ListArtifacts(grpc::ServerContext* ctx, const nanonas::v1::ListArtifactsRequest* req,
                             nanonas::v1::ListArtifactsResponse* resp) override;
  grpc::Status DownloadArtifact(grpc::ServerContext* ctx,
                                const nanonas::v1::DownloadArtifactRequest* req,
                                grpc::ServerWriter<nanonas::v1::ArtifactChunk>* writer) override;
  grpc::Status RegisterWorker(grpc::ServerContext* ctx,
                              const nanonas::v1::RegisterWorkerRequest* req,
                              nanonas::v1::RegisterWorkerResponse* resp) override;
  grpc::Status Heartbeat(grpc::ServerContext* ctx, const nanonas::v1::HeartbeatRequest* req,
                         nanonas::v1::HeartbeatResponse* resp) override;
  grpc::Status LeaveWorker(grpc::ServerContext* ctx, const nanonas::v1::LeaveRequest* req,
                           nanonas::v1::LeaveResponse* resp) override;
  grpc::Status FetchDataset(grpc::ServerContext* ctx, const nanonas::v1::FetchDatasetRequest* req,
                            grpc::ServerWriter<nanonas::v1::DatasetChunk>* writer) override;

 private:
  coordinator::Coordinator* core_;
  coordinator::DatasetRegistry* datasets_;
};

}  // namespace nanonas::grpc_layer

#endif  // NANONAS_SERVER_GRPC_COORDINATOR_SERVICE_H_
