#include "worker/service/child_protocol.h"

#include <unistd.h>

#include "gtest/gtest.h"
#include "nanonas/v1/nanonas.pb.h"

namespace nanonas {
namespace {

TEST(WorkerChildProtocolTest, RoundTripsFramesOverAPipe) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  nanonas::v1::EvaluateRequest sent;
  sent.set_k(7);
  sent.set_dataset_id("sha256:abc");
  ASSERT_TRUE(WriteFrame(fds[1], sent).ok());
  close(fds[1]);
  nanonas::v1::EvaluateRequest got;
  auto r = ReadFrame(fds[0], &got);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(*r);
  EXPECT_EQ(got.k(), 7);
  EXPECT_EQ(got.dataset_id(), "sha256:abc");
  auto eof = ReadFrame(fds[0], &got);
  ASSERT_TRUE(eof.ok());
  EXPECT_FALSE(*eof);
  close(fds[0]);
}

TEST(WorkerChildProtocolTest, DecoderAssemblesFramesSplitAnywhere) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  nanonas::v1::EvaluateEvent e1, e2;
  e1.mutable_progress()->set_batch(3);
  e2.mutable_result()->set_best_validation_accuracy(0.5);
  ASSERT_TRUE(WriteFrame(fds[1], e1).ok());
  ASSERT_TRUE(WriteFrame(fds[1], e2).ok());
  close(fds[1]);
  char buf[256];
  ssize_t n = read(fds[0], buf, sizeof(buf));
  close(fds[0]);
  ASSERT_GT(n, 8);
  FrameDecoder decoder;
  std::string payload;
  std::vector<std::string> frames;
  for (ssize_t i = 0; i < n; ++i) {  // one byte at a time
    decoder.Append(buf + i, 1);
    while (decoder.Next(&payload).value()) frames.push_back(payload);
  }
  ASSERT_EQ(frames.size(), 2u);
  nanonas::v1::EvaluateEvent back;
  ASSERT_TRUE(back.ParseFromString(frames[1]));
  EXPECT_DOUBLE_EQ(back.result().best_validation_accuracy(), 0.5);
  EXPECT_EQ(decoder.pending_bytes(), 0u);
}

TEST(WorkerChildProtocolTest, RejectsAbsurdLengths) {
  FrameDecoder decoder;
  decoder.Append("\xff\xff\xff\xff", 4);
  std::string payload;
  EXPECT_EQ(decoder.Next(&payload).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace nanonas
