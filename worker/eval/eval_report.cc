#include "worker/eval/eval_report.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/sha256.h"
#include "common/export/report.h"

namespace nanonas {
namespace {

namespace v1 = nanonas::v1;

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t nanos = absl::ToUnixNanos(t);
  ts.set_seconds(nanos / 1000000000);
  ts.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return ts;
}

void FillEpoch(const EpochStats& e, v1::EpochResult* out) {
  out->set_epoch(e.epoch);
  out->set_train_loss(e.train_loss);
  out->set_train_accuracy(e.train_accuracy);
  out->set_validation_loss(e.validation_loss);
  out->set_validation_accuracy(e.validation_accuracy);
  out->set_seconds(e.seconds);
}

// The job's spec: the command line's settings, the data by content hash.
void FillSpec(const EvalRun& run, v1::JobSpec* s) {
  const CandidateSpec& spec = run.spec;
  const TrainOptions& options = run.train;
  s->set_name(absl::StrCat("nanonas-eval k=", spec.k, " c=", spec.c, " on ", run.options.data));
  s->set_dataset_id(absl::StrCat("sha256:", run.hash));
  if (run.test.has_value()) s->set_test_dataset_id(absl::StrCat("sha256:", run.test_hash));
  s->mutable_input()->set_height(spec.input.height);
  s->mutable_input()->set_width(spec.input.width);
  s->mutable_input()->set_channels(spec.input.channels);
  s->set_color_mode(spec.input.channels == 1 ? v1::COLOR_MODE_GRAYSCALE : v1::COLOR_MODE_RGB);
  s->set_validation_split(run.options.val_split);
  s->set_variant(VariantName(spec.variant));
  s->mutable_evaluation()->set_epochs(options.epochs);
  s->mutable_evaluation()->set_learning_rate(options.learning_rate);
  s->mutable_evaluation()->set_batch_size(options.batch_size);
  s->mutable_evaluation()->set_seed(options.seed);
  s->mutable_final_training()->set_epochs(options.epochs);
  s->mutable_final_training()->set_learning_rate(options.learning_rate);
  s->mutable_final_training()->set_batch_size(options.batch_size);
}

// The one candidate, the search result it is, and its training as the final training.
void FillCandidate(const EvalRun& run, int64_t peak_memory_bytes, v1::Job* job) {
  const FinalizedModel& m = *run.model;
  const TrainResult& result = run.result;
  v1::Candidate& c = *job->add_candidates();
  c.set_k(run.spec.k);
  c.set_c(run.spec.c);
  c.set_state(v1::CANDIDATE_STATE_DONE);
  c.set_macc(run.resources.macc);
  c.set_flash_bytes(m.flash_bytes);
  c.set_ram_bytes(run.resources.ram_bytes);
  c.set_best_validation_accuracy(result.best_validation_accuracy);
  c.set_peak_memory_bytes(peak_memory_bytes);
  c.set_worker("nanonas-eval");
  c.set_duration_seconds(result.seconds);
  c.set_attempts(1);
  c.set_sequence(0);
  c.set_train_images_per_second(result.train_images_per_second);

  v1::SearchResult& r = *job->mutable_result();
  r.set_found(true);
  r.set_k(run.spec.k);
  r.set_c(run.spec.c);
  r.set_validation_accuracy(result.best_validation_accuracy);
  const std::string& test_flag = run.options.test_data;
  r.set_stop_reason(
      absl::StrCat("no search: nanonas-eval trained the given candidate",
                   test_flag.empty() ? "" : absl::StrCat(" (test set ", test_flag, ")")));
  r.set_macc(run.resources.macc);
  r.set_flash_bytes(m.flash_bytes);
  r.set_ram_bytes(run.resources.ram_bytes);

  v1::FinalTraining& ft = *job->mutable_final_training();
  ft.set_state(v1::CANDIDATE_STATE_DONE);
  for (const EpochStats& e : result.epochs) FillEpoch(e, ft.add_epochs());
  ft.set_best_validation_accuracy(result.best_validation_accuracy);
  ft.set_quantized_validation_accuracy(m.quantized_validation_accuracy);
  if (m.has_test) {
    ft.set_has_test_accuracy(true);
    ft.set_float_test_accuracy(m.float_test_accuracy);
    ft.set_quantized_test_accuracy(m.quantized_test_accuracy);
  }
  ft.set_worker("nanonas-eval");
  ft.set_duration_seconds(result.seconds);
  ft.set_flash_bytes(m.flash_bytes);
  ft.set_ram_bytes(run.resources.ram_bytes);
}

void AddArtifact(const std::string& name, const std::string& bytes, v1::Job* job) {
  v1::Artifact& a = *job->add_artifacts();
  a.set_name(name);
  a.set_size_bytes(static_cast<int64_t>(bytes.size()));
  a.set_sha256(Sha256Hex(bytes));
}

}  // namespace

v1::Job ReportJob(const EvalRun& run,
                  const std::vector<std::pair<std::string, std::string>>& artifacts,
                  absl::Time finished, int64_t peak_memory_bytes) {
  v1::Job job;
  job.set_id("local");
  FillSpec(run, job.mutable_spec());
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  *job.mutable_created() = ToTimestamp(run.created);
  *job.mutable_started() = ToTimestamp(run.started);
  *job.mutable_finished() = ToTimestamp(finished);
  job.set_num_classes(run.data.num_classes());
  for (const std::string& name : run.data.class_names) job.add_class_names(name);
  job.set_num_images(run.data.size());
  job.set_evaluation_dataset_id(job.spec().dataset_id());
  FillCandidate(run, peak_memory_bytes, &job);
  for (const auto& [name, bytes] : artifacts) AddArtifact(name, bytes, &job);
  return job;
}

std::vector<std::pair<std::string, std::string>> ExportFiles(const EvalRun& run,
                                                             int64_t peak_memory_bytes) {
  std::vector<std::pair<std::string, std::string>> files;
  files.emplace_back("model.tflite", run.model->tflite);
  files.emplace_back("model.h", run.model->header);
  v1::Job job = ReportJob(run, files, absl::Now(), peak_memory_bytes);
  std::string svg = SearchPathSvg(job);
  AddArtifact("search-path.svg", svg, &job);
  files.emplace_back("report.json", SearchReportJson(job));
  files.emplace_back("search-path.svg", std::move(svg));
  return files;
}

}  // namespace nanonas
