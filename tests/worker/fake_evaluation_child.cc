// A stand-in for `nanonas-worker --evaluate-child` that speaks the same pipe protocol and
// misbehaves on demand, chosen by the request's k:
//   k=1 succeeds (one progress event, one epoch, a DONE result)
//   k=2 crashes (SIGSEGV)   k=3 grows its memory until killed   k=4 sleeps until killed
//   k=5 exits with status 7 without a result   k=6 writes a garbage frame
//   k=7 closes its output and hangs
// Its progress events carry the request's threads in batches_per_epoch (what the runner granted).
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "nanonas/v1/nanonas.pb.h"
#include "worker/service/child_protocol.h"

int main(int argc, char** argv) {
  std::string dataset_file;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--dataset-file") dataset_file = argv[i + 1];
  }
  nanonas::v1::EvaluateRequest request;
  auto got = nanonas::ReadFrame(STDIN_FILENO, &request);
  if (!got.ok() || !*got) return 2;
  nanonas::v1::EvaluateEvent event;
  switch (request.k()) {
    case 1: {
      event.mutable_progress()->set_k(1);
      event.mutable_progress()->set_batch(1);
      event.mutable_progress()->set_batches_per_epoch(request.threads());
      (void)nanonas::WriteFrame(STDOUT_FILENO, event);
      event.Clear();
      event.mutable_epoch()->set_epoch(1);
      event.mutable_epoch()->set_validation_accuracy(0.75);
      (void)nanonas::WriteFrame(STDOUT_FILENO, event);
      event.Clear();
      auto* r = event.mutable_result();
      r->set_state(nanonas::v1::CANDIDATE_STATE_DONE);
      r->set_best_validation_accuracy(0.75);
      r->set_peak_memory_bytes(nanonas::OwnPeakRssBytes());
      r->set_error(access(dataset_file.c_str(), R_OK) == 0 ? "" : "dataset file missing");
      (void)nanonas::WriteFrame(STDOUT_FILENO, event);
      return 0;
    }
    case 2:
      raise(SIGSEGV);
      return 0;
    case 3: {
      std::vector<char*> blocks;
      for (int i = 0; i < 400; ++i) {  // up to 4 GiB, 10 MiB at a time, every page touched
        char* b = new char[10 << 20];
        std::memset(b, 1, 10 << 20);
        blocks.push_back(b);
        usleep(5000);
      }
      return 0;
    }
    case 4:
      event.mutable_progress()->set_k(4);
      event.mutable_progress()->set_batches_per_epoch(request.threads());
      (void)nanonas::WriteFrame(STDOUT_FILENO, event);
      while (true) pause();
    case 5:
      return 7;
    case 7:  // closes its output, then hangs
      close(STDOUT_FILENO);
      while (true) pause();
    default:
      (void)!write(STDOUT_FILENO, "\xff\xff\xff\xff garbage", 12);
      pause();
      return 0;
  }
}
