// The coordinator's submission checks and a job's dataset preparation (declared in coordinator.h):
// QUEUED -> PREPARING -> RUNNING, or FAILED with the preparer's error. The preparer is called
// without the lock; its callbacks take the lock and find their preparation by number, so a result
// that arrives after a cancel, an abort or a shutdown is dropped.
#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/job_state.h"

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;

namespace {

// Live preparation events per job: at most one per this, plus each dataset's first and last.
constexpr absl::Duration kPreparationEventEvery = absl::Milliseconds(250);

std::vector<std::string> ClassNames(const v1::DatasetInfo& info) {
  return std::vector<std::string>(info.class_names().begin(), info.class_names().end());
}

absl::Status CheckClasses(const std::string& dataset_id, size_t classes) {
  if (classes >= 2) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("dataset ", dataset_id, " has ", classes,
                                                 " class; a classifier needs at least 2 class "
                                                 "folders"));
}

}  // namespace

absl::Status Coordinator::CheckDatasets(const v1::JobSpec& spec) const {
  NANONAS_ASSIGN_OR_RETURN(v1::DatasetInfo train, deps_.lookup(spec.dataset_id()));
  NANONAS_RETURN_IF_ERROR(CheckClasses(spec.dataset_id(), train.class_names_size()));
  if (!spec.test_dataset_id().empty()) {
    absl::StatusOr<v1::DatasetInfo> test = deps_.lookup(spec.test_dataset_id());
    if (!test.ok()) {
      return absl::Status(test.status().code(),
                          absl::StrCat("spec.test_dataset_id: ", test.status().message()));
    }
    NANONAS_RETURN_IF_ERROR(CheckTestClasses(ClassNames(train), ClassNames(*test)));
  }
  return CheckCalibrationImages(spec, train.num_images());
}

absl::StatusOr<std::optional<v1::Job>> Coordinator::FindRequest(const std::string& request_id,
                                                                const v1::JobSpec& spec) {
  if (request_id.empty()) return std::nullopt;
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return std::nullopt;
  const JobRuntime* rt = FindJob(it->second);
  if (rt == nullptr) return std::nullopt;
  if (!google::protobuf::util::MessageDifferencer::Equals(rt->record.job().spec(), spec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("request_id '", request_id, "' already made job ", rt->record.id(),
                     " with a different spec; choose a new request_id for a new job"));
  }
  NANONAS_LOG(INFO) << "job " << rt->record.id() << " submitted again (request_id " << request_id
                    << "): nothing new made";
  return rt->record.job();
}

PreparationRequest Coordinator::NewPreparation(JobRuntime& rt, uint64_t* id) {
  *id = ++preparation_counter_;
  preparations_[*id].job_id = rt.record.id();
  rt.preparation = *id;
  const v1::JobSpec& spec = rt.record.job().spec();
  PreparationRequest request;
  request.job_id = rt.record.id();
  request.dataset_id = spec.dataset_id();
  request.test_dataset_id = spec.test_dataset_id();
  request.input.height = spec.input().height();
  request.input.width = spec.input().width();
  request.input.channels = spec.input().channels();
  return request;
}

void Coordinator::StartPreparation(uint64_t id, const PreparationRequest& request) {
  std::unique_ptr<PreparationHandle> handle = deps_.preparer->Start(
      request, [this, id](const v1::Preparation& p) { OnPreparationProgress(id, p); },
      [this, id](absl::StatusOr<PreparationResult> r) { OnPreparationDone(id, std::move(r)); });
  absl::MutexLock lock(&mu_);
  auto it = preparations_.find(id);
  if (it == preparations_.end()) return;  // done already
  if (it->second.cancelled || shutting_down_) handle->Cancel();
  it->second.handle = std::move(handle);
}

void Coordinator::CancelPreparation(JobRuntime& rt) {
  if (rt.preparation == 0) return;
  auto it = preparations_.find(rt.preparation);
  rt.preparation = 0;
  if (it == preparations_.end()) return;
  it->second.cancelled = true;
  if (it->second.handle) it->second.handle->Cancel();
}

void Coordinator::OnPreparationProgress(uint64_t id, const v1::Preparation& progress) {
  absl::MutexLock lock(&mu_);
  auto it = preparations_.find(id);
  if (it == preparations_.end() || it->second.cancelled || shutting_down_) return;
  JobRuntime* rt = FindJob(it->second.job_id);
  if (rt == nullptr || rt->preparation != id) return;
  absl::Status st;
  if (rt->record.state() == v1::JOB_STATE_QUEUED) {
    st = MoveJob(*rt, v1::JOB_STATE_PREPARING, "");
    UpdateMetrics();
  }
  const v1::Preparation before = rt->record.job().preparation();
  if (st.ok()) st = rt->record.SetPreparation(progress);
  if (!st.ok()) {
    Abort(*rt, st);
    UpdateMetrics();
    return;
  }
  const bool first = before.dataset_id() != progress.dataset_id() ||
                     before.test_set() != progress.test_set() || progress.images_done() == 0;
  const bool last =
      progress.images_total() > 0 && progress.images_done() >= progress.images_total();
  const absl::Time now = Now();
  if (!first && !last && now - rt->last_preparation_event < kPreparationEventEvery) return;
  rt->last_preparation_event = now;
  rt->log.AddProgress(++progress_counter_,
                      MakePreparationEvent(rt->log.last_sequence(), now, progress));
  changed_.SignalAll();
}

void Coordinator::OnPreparationDone(uint64_t id, absl::StatusOr<PreparationResult> result) {
  absl::MutexLock lock(&mu_);
  auto it = preparations_.find(id);
  if (it == preparations_.end()) return;
  const bool dropped = it->second.cancelled;
  const std::string job_id = it->second.job_id;
  preparations_.erase(it);
  changed_.SignalAll();  // the destructor waits for the preparations to end
  if (dropped || shutting_down_) return;
  JobRuntime* rt = FindJob(job_id);
  if (rt == nullptr || rt->preparation != id) return;
  rt->preparation = 0;
  absl::Status st = FinishPreparation(*rt, std::move(result));
  Abort(*rt, st);
  Dispatch();
  UpdateMetrics();
}

absl::Status Coordinator::FinishPreparation(JobRuntime& rt,
                                            absl::StatusOr<PreparationResult> result) {
  if (rt.record.state() == v1::JOB_STATE_QUEUED) {  // it reported no progress
    NANONAS_RETURN_IF_ERROR(MoveJob(rt, v1::JOB_STATE_PREPARING, ""));
  }
  if (!result.ok()) {
    return MoveJob(rt, v1::JOB_STATE_FAILED,
                   absl::StrCat("preparing the dataset: ", result.status().message()));
  }
  if (deps_.metrics) {
    for (const PreparedDataset* d : {&result->train, result->test ? &*result->test : nullptr}) {
      if (d == nullptr) continue;
      deps_.metrics->ObservePreparation(d->seconds, d->reused,
                                        d->reused ? 0 : d->dataset.num_images);
    }
  }
  absl::Status checked = CheckPrepared(rt, *result);
  if (!checked.ok()) {
    return MoveJob(rt, v1::JOB_STATE_FAILED,
                   absl::StrCat("preparing the dataset: ", checked.message()));
  }
  const v1::Job& job = rt.record.job();
  NANONAS_LOG(INFO) << "job " << job.id() << " prepared: dataset " << job.spec().dataset_id()
                    << " (" << job.num_images() << " images, " << job.num_classes() << " classes"
                    << (result->train.reused ? ", reused" : "") << ")";
  NANONAS_RETURN_IF_ERROR(MoveJob(rt, v1::JOB_STATE_RUNNING, ""));
  return StepJob(rt);
}

absl::Status Coordinator::CheckPrepared(JobRuntime& rt, const PreparationResult& result) {
  const DecodedDataset& train = result.train.dataset;
  const v1::JobSpec& spec = rt.record.job().spec();
  NANONAS_RETURN_IF_ERROR(CheckClasses(spec.dataset_id(), train.class_names.size()));
  JobRecord::Prepared prepared;
  prepared.evaluation_dataset_id = train.id;
  prepared.class_names = train.class_names;
  prepared.num_images = train.num_images;
  if (!spec.test_dataset_id().empty()) {
    if (!result.test.has_value()) {
      return absl::InternalError("the preparer returned no test set");
    }
    NANONAS_RETURN_IF_ERROR(CheckTestClasses(train.class_names, result.test->dataset.class_names));
    prepared.test_evaluation_dataset_id = result.test->dataset.id;
  }
  NANONAS_RETURN_IF_ERROR(CheckCalibrationImages(spec, train.num_images));
  NANONAS_RETURN_IF_ERROR(rt.record.SetPrepared(prepared));
  // The feasibility (host memory) depends on the decoded set: made again.
  rt.feasible = MakeFeasibility(rt.record.job(), deps_.resource_model, deps_.host_memory_model);
  rt.fits.clear();
  // The whole space must hold at least one candidate for this input.
  NANONAS_RETURN_IF_ERROR(ArchitectureOf(rt.record.job(), 1, 0).status());
  NANONAS_ASSIGN_OR_RETURN(NanoNasSearch search,
                           NanoNasSearch::Create(SearchOptionsOf(rt.record.job()), rt.feasible));
  rt.search = std::make_unique<NanoNasSearch>(std::move(search));
  return absl::OkStatus();
}

}  // namespace nanonas::coordinator
