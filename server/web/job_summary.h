// Summaries of jobs for the web view's job list (GET /api/v1/jobs): identity, target limits, state,
// progress along the search path, result, times and an ETA. Pure functions of a Job and the time.
//
// ETA: seconds left of the evaluation running now (a candidate, or the final training), from the
// job's measured epoch times: (planned epochs - finished epochs) x the mean epoch time of that
// evaluation, or, before its first epoch ends, of the job's finished candidates (a final training
// has no estimate before its own first epoch). The length of the search path is not known in
// advance, so no ETA of the whole job is given. Thread-safe (no state).
#ifndef NANONAS_SERVER_WEB_JOB_SUMMARY_H_
#define NANONAS_SERVER_WEB_JOB_SUMMARY_H_

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "nanonas/v1/nanonas.pb.h"
#include "nlohmann/json.hpp"

namespace nanonas::web {

// "2026-12-04T16:40:00Z" (UTC, seconds); "" for an unset timestamp.
std::string FormatTimestamp(const google::protobuf::Timestamp& t);

// Candidates whose evaluation has ended (done, infeasible, failed, cancelled).
int CandidatesSettled(const nanonas::v1::Job& job);

// See the file comment; nullopt when nothing runs or nothing was measured yet.
std::optional<double> EtaSeconds(const nanonas::v1::Job& job);

// The job's dataset preparation progress as above; null before it began.
nlohmann::json PreparationSummary(const nanonas::v1::Job& job);

// Seconds from the job's start (its creation while queued) to its end, or to `now` while it runs.
double ElapsedSeconds(const nanonas::v1::Job& job, absl::Time now);

// {"id", "name", "dataset_id", "test_dataset_id", "target": {"name", "ram_bytes", "flash_bytes",
//  "macc", "host_memory_bytes"}, "state", "phase" ("queued" | "preparing" | "search" |
//  "final_training" | "ended"), "preparation": {"dataset_id", "test_set", "images_done",
//  "images_total", "seconds", "reused"} | null (the dataset preparation's last progress; set from
//  PREPARING on), "progress": {"candidates", "settled", "evaluated", "running": {"k", "c", "epoch",
//  "epochs", "final_training"} | null}, "result": {"found", "k", "c", "validation_accuracy",
//  "macc", "flash_bytes", "ram_bytes", "stop_reason", "quantized_validation_accuracy",
//  "quantized_test_accuracy"} | null, "error", "created", "started", "finished",
//  "elapsed_seconds", "eta_seconds" | null}. States are the enum names of nanonas.v1.
nlohmann::json JobSummary(const nanonas::v1::Job& job, absl::Time now);

}  // namespace nanonas::web

#endif  // NANONAS_SERVER_WEB_JOB_SUMMARY_H_
