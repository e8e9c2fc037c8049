// A job's event log for watchers: the persisted events (in sequence order, the WatchJob resume
// cursor) and a bounded ring of live progress events (never persisted), merged in the order they
// happened. MakeProgressEvent is the one function that builds a progress event.
//
// Not thread-safe: the coordinator holds its lock around every call (and wakes waiting watchers).
#ifndef NANONAS_SERVER_COORDINATOR_EVENT_LOG_H_
#define NANONAS_SERVER_COORDINATOR_EVENT_LOG_H_

#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nanonas/v1/nanonas.pb.h"

namespace nanonas::coordinator {

// A watcher's position. Start with after_sequence from the request.
struct WatchCursor {
  int64_t sequence = 0;   // last persisted event delivered
  uint64_t progress = 0;  // last live progress event delivered
  bool started = false;   // the snapshot was sent
};

// A live progress event, placed after persisted event `sequence` (the job's last one).
nanonas::v1::JobEvent MakeProgressEvent(int64_t sequence, absl::Time now,
                                        nanonas::v1::CandidateProgress progress);
// A live preparation progress event (JobEvent.preparation), placed like a progress event.
nanonas::v1::JobEvent MakePreparationEvent(int64_t sequence, absl::Time now,
                                           const nanonas::v1::Preparation& preparation);
// The progress of an epoch's end of (k, c) out of `epochs` (final: of the final training).
nanonas::v1::CandidateProgress EpochProgress(int k, int c, const nanonas::v1::EpochResult& epoch,
                                             int epochs, bool final_training);

class EventLog {
 public:
  explicit EventLog(size_t progress_capacity) : capacity_(progress_capacity) {}

  // Replaces the persisted events (recovery; in sequence order).
  void Load(std::vector<nanonas::v1::JobEvent> events);
  int64_t last_sequence() const { return last_sequence_; }
  // Sets the sequence (the next one) and the time of an event about to be persisted.
  void Stamp(nanonas::v1::JobEvent* event, absl::Time now) const;
  // Records an event the store has accepted.
  void Append(nanonas::v1::JobEvent event);
  // Adds live progress event number `n` (increasing across all jobs), dropping the oldest beyond
  // the capacity.
  void AddProgress(uint64_t n, nanonas::v1::JobEvent event);

  // Starts a watch: the snapshot of `job` at the cursor's sequence (the latest for 0).
  // OUT_OF_RANGE for a cursor beyond the last event. `progress_now`: the newest progress number.
  absl::StatusOr<nanonas::v1::JobEvent> Start(WatchCursor* cursor, const nanonas::v1::Job& job,
                                              absl::Time now, uint64_t progress_now) const;
  // Something after the cursor?
  bool HasNews(const WatchCursor& cursor) const;
  // Appends the persisted and live events after the cursor, in the order they happened, and
  // moves the cursor past them.
  void Collect(WatchCursor* cursor, uint64_t progress_now,
               std::vector<nanonas::v1::JobEvent>* out) const;

 private:
  const size_t capacity_;
  std::vector<nanonas::v1::JobEvent> events_;  // persisted, in order
  int64_t last_sequence_ = 0;
  std::deque<std::pair<uint64_t, nanonas::v1::JobEvent>> progress_;  // live only
};

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_EVENT_LOG_H_
