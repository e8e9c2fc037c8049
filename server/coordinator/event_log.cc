#include "server/coordinator/event_log.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/coordinator/job_state.h"

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;

v1::JobEvent MakeProgressEvent(int64_t sequence, absl::Time now, v1::CandidateProgress progress) {
  v1::JobEvent ev;
  ev.set_sequence(sequence);
  *ev.mutable_time() = TimestampOf(now);
  *ev.mutable_progress() = std::move(progress);
  return ev;
}

v1::JobEvent MakePreparationEvent(int64_t sequence, absl::Time now,
                                  const v1::Preparation& preparation) {
  v1::JobEvent ev;
  ev.set_sequence(sequence);
  *ev.mutable_time() = TimestampOf(now);
  *ev.mutable_preparation() = preparation;
  return ev;
}

v1::CandidateProgress EpochProgress(int k, int c, const v1::EpochResult& epoch, int epochs,
                                    bool final_training) {
  v1::CandidateProgress p;
  p.set_k(k);
  p.set_c(c);
  p.set_epoch(epoch.epoch());
  p.set_epochs(epochs);
  p.set_running_loss(epoch.train_loss());
  p.set_running_accuracy(epoch.train_accuracy());
  if (final_training) p.set_final_training(true);
  return p;
}

void EventLog::Load(std::vector<v1::JobEvent> events) {
  events_ = std::move(events);
  last_sequence_ = events_.empty() ? 0 : events_.back().sequence();
}

void EventLog::Stamp(v1::JobEvent* event, absl::Time now) const {
  event->set_sequence(last_sequence_ + 1);
  *event->mutable_time() = TimestampOf(now);
}

void EventLog::Append(v1::JobEvent event) {
  last_sequence_ = event.sequence();
  events_.push_back(std::move(event));
}

void EventLog::AddProgress(uint64_t n, v1::JobEvent event) {
  progress_.emplace_back(n, std::move(event));
  while (progress_.size() > capacity_) progress_.pop_front();
}

absl::StatusOr<v1::JobEvent> EventLog::Start(WatchCursor* cursor, const v1::Job& job,
                                             absl::Time now, uint64_t progress_now) const {
  if (cursor->sequence < 0 || cursor->sequence > last_sequence_) {
    return absl::OutOfRangeError(absl::StrCat("after_sequence ", cursor->sequence,
                                              " is beyond the job's last event ", last_sequence_));
  }
  cursor->started = true;
  if (cursor->sequence == 0) cursor->sequence = last_sequence_;
  v1::JobEvent snap;
  snap.set_sequence(cursor->sequence);
  *snap.mutable_time() = TimestampOf(now);
  *snap.mutable_job() = job;
  cursor->progress = progress_now;
  return snap;
}

bool EventLog::HasNews(const WatchCursor& cursor) const {
  return last_sequence_ > cursor.sequence ||
         (!progress_.empty() && progress_.back().first > cursor.progress);
}

void EventLog::Collect(WatchCursor* cursor, uint64_t progress_now,
                       std::vector<v1::JobEvent>* out) const {
  // A progress event carries the sequence of the last persisted event before it.
  std::vector<const v1::JobEvent*> live;
  for (const auto& [n, ev] : progress_) {
    if (n > cursor->progress) live.push_back(&ev);
  }
  size_t j = 0;
  for (const auto& ev : events_) {
    if (ev.sequence() <= cursor->sequence) continue;
    while (j < live.size() && live[j]->sequence() < ev.sequence()) out->push_back(*live[j++]);
    out->push_back(ev);
  }
  while (j < live.size()) out->push_back(*live[j++]);
  cursor->sequence = std::max(cursor->sequence, last_sequence_);
  cursor->progress = progress_now;
}

}  // namespace nanonas::coordinator
