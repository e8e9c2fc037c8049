#include "worker/service/weights_codec.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nanonas {
namespace {

ModelWeights Sample() {
  ModelWeights w;
  for (int i = 0; i < 2; ++i) {
    ConvWeights c;
    c.in_channels = i == 0 ? 3 : 4;
    c.out_channels = 4;
    for (int j = 0; j < c.out_channels * 9 * c.in_channels; ++j) c.kernel.push_back(0.01f * j - i);
    c.bias = {1, 2, 3, 4};
    w.convs.push_back(c);
    BatchNormWeights b;
    b.channels = i == 0 ? 3 : 4;
    b.gamma.assign(b.channels, 1.5f);
    b.beta.assign(b.channels, -0.5f);
    b.moving_mean.assign(b.channels, 0.25f);
    b.moving_variance.assign(b.channels, 2.0f);
    w.batch_norms.push_back(b);
  }
  w.dense.in_features = 4;
  w.dense.out_features = 2;
  w.dense.kernel = {1, 2, 3, 4, 5, 6, 7, 8};
  w.dense.bias = {-1, 1};
  return w;
}

TEST(WorkerWeightsCodecTest, RoundTripsExactly) {
  ModelWeights w = Sample();
  auto back = DeserializeModelWeights(SerializeModelWeights(w));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->convs.size(), 2u);
  EXPECT_EQ(back->convs[1].kernel, w.convs[1].kernel);
  EXPECT_EQ(back->convs[0].bias, w.convs[0].bias);
  EXPECT_EQ(back->batch_norms[0].moving_variance, w.batch_norms[0].moving_variance);
  EXPECT_FLOAT_EQ(back->batch_norms[1].epsilon, 1e-3f);
  EXPECT_EQ(back->dense.kernel, w.dense.kernel);
  EXPECT_EQ(back->dense.out_features, 2);
}

TEST(WorkerWeightsCodecTest, RejectsDamagedInput) {
  std::string bytes = SerializeModelWeights(Sample());
  EXPECT_EQ(DeserializeModelWeights("").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DeserializeModelWeights(bytes.substr(0, bytes.size() - 3)).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(DeserializeModelWeights(bytes + "x").status().message()),
              testing::HasSubstr("trailing"));
  std::string bad_dims = bytes;
  bad_dims[12] = '\xff';  // first conv's in_channels becomes absurd
  bad_dims[13] = '\xff';
  bad_dims[14] = '\xff';
  bad_dims[15] = '\x7f';
  EXPECT_EQ(DeserializeModelWeights(bad_dims).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace nanonas
