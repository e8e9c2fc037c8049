// The oneDNN convolution wrapper against the naive double-precision convolution (forward) and
// against central finite differences of it (backward data and weights).
// Tolerances: forward |fast - ref| <= 1e-4 (1 + |ref|); backward |analytic - numeric| <=
// 1e-3 |numeric| + 1e-4 (finite differences with eps 1e-5 in double).
#include "worker/engine/conv.h"

#include "gtest/gtest.h"
#include "tests/engine/test_util.h"
#include "worker/engine/reference.h"

namespace nanonas::engine {
namespace {

using dnnl::memory;
using testing::Dot;
using testing::NumericGrad;
using testing::RandomVec;

struct Fixture {
  ConvShape s;
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{eng};
  ConvLayer conv;
  AlignedBuffer src, dst, weights, bias, diff_dst, diff_src, diff_weights, diff_bias, scratch;
  memory::desc plain;

  explicit Fixture(const ConvShape& shape) : s(shape) {
    {
      absl::Status st = conv.Init(eng, s, nullptr);
      EXPECT_TRUE(st.ok()) << st;
    }
    const size_t in = static_cast<size_t>(s.n) * s.h * s.w * s.cin;
    const size_t out = static_cast<size_t>(s.n) * s.h * s.w * s.cout;
    const size_t wsize = conv.master_weights_desc().get_size() / sizeof(float);
    src = AllocateAligned(in);
    dst = AllocateAligned(out);
    weights = AllocateAligned(wsize);
    bias = AllocateAligned(s.cout);
    diff_dst = AllocateAligned(out);
    diff_src = AllocateAligned(in);
    diff_weights = AllocateAligned(wsize);
    diff_bias = AllocateAligned(s.cout);
    scratch = AllocateAligned(conv.scratchpad_bytes() / sizeof(float) + 16);
    EXPECT_TRUE(conv.Bind(src.get(), dst.get(), weights.get(), bias.get(), diff_dst.get(),
                          diff_src.get(), diff_weights.get(), diff_bias.get(), scratch.get())
                    .ok());
    plain = memory::desc({s.cout, s.cin, 3, 3}, memory::data_type::f32, memory::format_tag::ohwi);
  }
  void SetWeights(const std::vector<double>& ohwi, const std::vector<double>& b) {
    std::vector<float> k(ohwi.begin(), ohwi.end());
    memory from(plain, eng, k.data()), to(conv.master_weights_desc(), eng, weights.get());
    dnnl::reorder(from, to).execute(stream, from, to);
    stream.wait();
    std::copy(b.begin(), b.end(), bias.get());
  }
  std::vector<float> DiffWeightsOhwi() {
    std::vector<float> k(static_cast<size_t>(s.cout) * 9 * s.cin);
    memory from(conv.master_weights_desc(), eng, diff_weights.get()), to(plain, eng, k.data());
    dnnl::reorder(from, to).execute(stream, from, to);
    stream.wait();
    return k;
  }
};

class ConvTest : public ::testing::TestWithParam<std::tuple<int, int, bool>> {};

TEST_P(ConvTest, ForwardMatchesNaiveConvolution) {
  const auto [cin, cout, relu] = GetParam();
  Fixture f({2, 5, 6, cin, cout, relu, true, true});
  const auto x = RandomVec(2 * 5 * 6 * cin, 1), k = RandomVec(cout * 9 * cin, 2),
             b = RandomVec(cout, 3);
  f.SetWeights(k, b);
  std::copy(x.begin(), x.end(), f.src.get());
  f.conv.Forward(f.stream);
  f.stream.wait();
  const auto ref = reference::Conv3x3(x, 2, 5, 6, cin, k, b, cout, relu);
  for (size_t i = 0; i < ref.size(); ++i) {
    ASSERT_NEAR(f.dst.get()[i], ref[i], 1e-4 * (1 + std::abs(ref[i]))) << i;
  }
}

TEST_P(ConvTest, BackwardMatchesFiniteDifferences) {
  // The network applies the ReLU mask to the gradient before calling the convolution's backward
  // pass, so the backward pass is checked without the activation for every channel pair.
  const int cin = std::get<0>(GetParam()), cout = std::get<1>(GetParam());
  const int n = 2, h = 4, w = 5;
  Fixture f({n, h, w, cin, cout, false, true, true});
  auto x = RandomVec(n * h * w * cin, 4), k = RandomVec(cout * 9 * cin, 5), b = RandomVec(cout, 6);
  const auto r = RandomVec(n * h * w * cout, 7);
  f.SetWeights(k, b);
  std::copy(x.begin(), x.end(), f.src.get());
  std::copy(r.begin(), r.end(), f.diff_dst.get());
  f.conv.Forward(f.stream);
  f.conv.BackwardWeights(f.stream);
  f.conv.BackwardData(f.stream);
  f.stream.wait();
  auto loss = [&] { return Dot(reference::Conv3x3(x, n, h, w, cin, k, b, cout, false), r); };
  auto near = [](double a, double num) { return std::abs(a - num) <= 1e-3 * std::abs(num) + 1e-4; };
  for (size_t i = 0; i < x.size(); ++i) {
    const double num = NumericGrad(x, i, loss);
    EXPECT_TRUE(near(f.diff_src.get()[i], num))
        << "dx " << i << ": " << f.diff_src.get()[i] << " vs " << num;
  }
  const auto dk = f.DiffWeightsOhwi();
  for (size_t i = 0; i < k.size(); ++i) {
    const double num = NumericGrad(k, i, loss);
    EXPECT_TRUE(near(dk[i], num)) << "dk " << i << ": " << dk[i] << " vs " << num;
  }
  for (int i = 0; i < cout; ++i) {
    const double num = NumericGrad(b, i, loss);
    EXPECT_TRUE(near(f.diff_bias.get()[i], num)) << "db " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Channels, ConvTest,
    ::testing::Values(std::make_tuple(1, 2, false), std::make_tuple(3, 4, true),
                      std::make_tuple(3, 16, false), std::make_tuple(8, 12, true),
                      std::make_tuple(16, 24, false), std::make_tuple(20, 27, false)));

// Winograd F(4x4,3x3) (chosen by WinogradPays: channels in multiples of 16, maps >= 10x10, ...)
// against the naive convolution (forward) and against the direct algorithm, itself checked by
// finite differences above (backward). Its input and output transforms add float32 rounding
// (measured here: at most 2.2e-5 relative to 1 + |value|, in the gradients, which sum up to
// 2x12x13 products per element); the tolerance is 1e-4 relative to 1 + |value|, 4.5x that and far
// below what training notices, and it still fails a wrong tile, transform or layout (errors of
// order 1).
TEST(ConvLayerTest, WinogradMatchesNaiveAndDirectConvolution) {
  const int n = 2, h = 12, w = 13, cin = 32, cout = 48;
  const ConvShape wino_shape{n, h, w, cin, cout, true, true, true};
  ASSERT_TRUE(WinogradPays(wino_shape));
  ConvShape direct_shape = wino_shape;
  direct_shape.allow_winograd = false;
  EXPECT_FALSE(WinogradPays(direct_shape));
  EXPECT_FALSE(WinogradPays({n, 8, 8, 16, 32, true, true, true}));
  EXPECT_FALSE(WinogradPays({n, 12, 12, 8, 32, true, true, true}));
  EXPECT_FALSE(WinogradPays({n, 14, 14, 16, 32, true, true, true}));
  EXPECT_TRUE(WinogradPays({n, 25, 25, 16, 32, true, true, true}));
  Fixture wino(wino_shape), direct(direct_shape);
  if (!wino.conv.winograd()) GTEST_SKIP() << "oneDNN has no Winograd convolution on this CPU";
  EXPECT_FALSE(direct.conv.winograd());
  const auto x = RandomVec(n * h * w * cin, 11), k = RandomVec(cout * 9 * cin, 12),
             b = RandomVec(cout, 13), r = RandomVec(n * h * w * cout, 14);
  const auto ref = reference::Conv3x3(x, n, h, w, cin, k, b, cout, true);
  double worst = 0;
  auto check = [&worst](const char* what, const float* got, const float* want, size_t count) {
    for (size_t i = 0; i < count; ++i) {
      const double err = std::abs(got[i] - want[i]) / (1 + std::abs(want[i]));
      worst = std::max(worst, err);
      ASSERT_LE(err, 1e-4) << what << " " << i << ": " << got[i] << " vs " << want[i];
    }
  };
  for (Fixture* f : {&wino, &direct}) {
    f->SetWeights(k, b);
    std::copy(x.begin(), x.end(), f->src.get());
    std::copy(r.begin(), r.end(), f->diff_dst.get());
    f->conv.Forward(f->stream);
    f->conv.BackwardWeights(f->stream);
    f->conv.BackwardData(f->stream);
    f->stream.wait();
  }
  const std::vector<float> ref_f(ref.begin(), ref.end());
  check("y", wino.dst.get(), ref_f.data(), ref_f.size());
  check("dx", wino.diff_src.get(), direct.diff_src.get(), x.size());
  check("db", wino.diff_bias.get(), direct.diff_bias.get(), cout);
  const auto dk_wino = wino.DiffWeightsOhwi(), dk_direct = direct.DiffWeightsOhwi();
  check("dk", dk_wino.data(), dk_direct.data(), k.size());
  std::printf("Winograd worst relative difference: %.2g\n", worst);

  // A second backward pass with a new gradient (after a new forward pass) uses the new gradient.
  const auto r2 = RandomVec(n * h * w * cout, 15);
  for (Fixture* f : {&wino, &direct}) {
    std::copy(r2.begin(), r2.end(), f->diff_dst.get());
    f->conv.Forward(f->stream);
    f->conv.BackwardData(f->stream);
    f->conv.BackwardWeights(f->stream);
    f->stream.wait();
  }
  check("dx2", wino.diff_src.get(), direct.diff_src.get(), x.size());
  const auto dk2_wino = wino.DiffWeightsOhwi(), dk2_direct = direct.DiffWeightsOhwi();
  check("dk2", dk2_wino.data(), dk2_direct.data(), k.size());
}

TEST(ConvLayerTest, KeepsAGivenMasterLayoutAcrossBatchSizes) {
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  ConvLayer a, b;
  ASSERT_TRUE(a.Init(eng, {16, 8, 8, 8, 16, true, true, true}, nullptr).ok());
  const memory::desc master = a.master_weights_desc();
  ASSERT_TRUE(b.Init(eng, {5, 8, 8, 8, 16, true, true, true}, &master).ok());
  EXPECT_TRUE(b.master_weights_desc() == master);
}

}  // namespace
}  // namespace nanonas::engine
