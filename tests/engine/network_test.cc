// Whole-network checks: the gradient of the training loss against central finite differences for
// both search-space variants, inference against the naive reference network, weight round trips.
#include "worker/engine/network.h"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "tests/engine/test_util.h"
#include "worker/engine/omp_threads.h"
#include "worker/engine/reference.h"

// Counts heap allocations of at least 4 KiB (buffers, not oneDNN's small bookkeeping) made
// through operator new anywhere in this process, for the no-allocation-in-the-loop test.
std::atomic<int64_t> g_large_allocations{0};

namespace nanonas::engine {
namespace {

Architecture MakeArch(int k, int c, InputShape in, int classes, Variant v) {
  CandidateSpec spec;
  spec.k = k;
  spec.c = c;
  spec.input = in;
  spec.classes = classes;
  spec.variant = v;
  auto arch = BuildArchitecture(spec);
  EXPECT_TRUE(arch.ok()) << arch.status();
  return *arch;
}

// Every parameter of a ModelWeights as pointers, in a fixed order (moving statistics excluded).
std::vector<float*> Params(ModelWeights& w) {
  std::vector<float*> p;
  for (auto& c : w.convs) {
    for (float& v : c.kernel) p.push_back(&v);
    for (float& v : c.bias) p.push_back(&v);
  }
  for (auto& b : w.batch_norms) {
    for (float& v : b.gamma) p.push_back(&v);
    for (float& v : b.beta) p.push_back(&v);
  }
  for (float& v : w.dense.kernel) p.push_back(&v);
  for (float& v : w.dense.bias) p.push_back(&v);
  return p;
}

class GradientCheckTest : public ::testing::TestWithParam<Variant> {};

// The network runs in float32 (finite differences with eps 1e-3 on the mean loss: larger steps
// meet the strong curvature that batch statistics give a 6-image batch), so the check is
// statistical: over every parameter, the analytic and numeric gradient vectors have
// cosine similarity >= 0.999 and relative difference norm <= 3%; and >= 95% of the parameters
// agree within 5% + 2e-4 (the rest may straddle a ReLU or max-pool kink).
TEST_P(GradientCheckTest, WholeNetworkGradientMatchesFiniteDifferences) {
  const Variant variant = GetParam();
  const Architecture arch = MakeArch(3, 2, {8, 8, 3}, 3, variant);
  const Dataset data = testing::MakeStripes(6, 8, 8, 3, 5);
  std::vector<int32_t> labels = {0, 1, 2, 0, 1, 2};
  const int n = 6;
  std::vector<int64_t> idx = {0, 1, 2, 3, 4, 5};
  auto net_or = Network::Create(arch, {n}, true);
  ASSERT_TRUE(net_or.ok()) << net_or.status();
  Network& net = **net_or;
  net.InitializeKeras(7);
  // Make biases, BN parameters non-trivial so that their gradients are exercised.
  ModelWeights w = net.GetWeights();
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-0.3f, 0.3f);
  for (auto& c : w.convs)
    for (float& v : c.bias) v = u(rng);
  for (auto& b : w.batch_norms) {
    for (float& v : b.gamma) v = 1.f + u(rng);
    for (float& v : b.beta) v = u(rng);
  }
  for (float& v : w.dense.bias) v = u(rng);
  ASSERT_TRUE(net.SetWeights(w).ok());

  net.LoadImages(data, idx.data(), n);
  const uint64_t dropout = 99;
  auto loss = [&](const ModelWeights& weights) {
    EXPECT_TRUE(net.SetWeights(weights).ok());
    net.set_dropout_state(dropout);
    EXPECT_TRUE(net.Forward(n, true).ok());
    int correct = 0;
    return net.Loss(n, labels.data(), &correct) / n;
  };
  loss(w);
  ASSERT_TRUE(net.Backward(n).ok());
  ModelWeights grads = net.GetGradients();
  std::vector<float*> g = Params(grads);
  std::vector<float*> p = Params(w);
  ASSERT_EQ(g.size(), p.size());

  const float eps = 1e-3f;
  double dot = 0, na = 0, nn = 0, nd = 0;
  int agree = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const float saved = *p[i];
    *p[i] = saved + eps;
    const double up = loss(w);
    *p[i] = saved - eps;
    const double down = loss(w);
    *p[i] = saved;
    const double num = (up - down) / (2 * eps);
    const double a = *g[i];
    dot += a * num;
    na += a * a;
    nn += num * num;
    nd += (a - num) * (a - num);
    if (std::abs(a - num) <= 0.05 * std::abs(num) + 2e-4) ++agree;
  }
  EXPECT_GT(std::sqrt(na), 1e-3);  // the check means something
  EXPECT_GE(dot / std::sqrt(na * nn), 0.999);
  EXPECT_LE(std::sqrt(nd / nn), 0.03);
  EXPECT_GE(agree, static_cast<int>(0.95 * p.size())) << "of " << p.size();
}

INSTANTIATE_TEST_SUITE_P(Variants, GradientCheckTest,
                         ::testing::Values(Variant::k2023, Variant::k2024));

// The 2023 first-layer shortcut (input BatchNorm gradients from weight gradients, no
// backward-data convolution) gives the gradients of the plain path. Tolerance: 1e-4 relative to
// the largest gradient of the tensor (float32 sums in a different order).
TEST(FirstLayerShortcutTest, GivesTheGradientsOfThePlainBackwardPass) {
  for (const InputShape in : {InputShape{9, 7, 3}, InputShape{6, 6, 1}}) {
    const Architecture arch = MakeArch(5, 1, in, 3, Variant::k2023);
    Dataset data = testing::MakeStripes(5, in.height, in.width, in.channels, 8);
    data.class_names = {"a", "b", "c"};
    std::vector<int64_t> idx = {0, 1, 2, 3, 4};
    std::vector<int32_t> labels = {0, 1, 2, 2, 1};
    ModelWeights g[2];
    for (int s = 0; s < 2; ++s) {
      auto net = Network::Create(arch, {5}, true, s == 0);
      ASSERT_TRUE(net.ok()) << net.status();
      (*net)->InitializeKeras(4);
      ModelWeights w = (*net)->GetWeights();
      for (float& v : w.batch_norms[0].gamma) v = 0.7f;
      for (float& v : w.batch_norms[0].beta) v = 0.2f;
      ASSERT_TRUE((*net)->SetWeights(w).ok());
      (*net)->LoadImages(data, idx.data(), 5);
      (*net)->set_dropout_state(1);
      ASSERT_TRUE((*net)->Forward(5, true).ok());
      int correct;
      (*net)->Loss(5, labels.data(), &correct);
      ASSERT_TRUE((*net)->Backward(5).ok());
      g[s] = (*net)->GetGradients();
    }
    auto expect_close = [](const std::vector<float>& a, const std::vector<float>& b,
                           const char* what) {
      ASSERT_EQ(a.size(), b.size());
      float scale = 0;
      for (float v : b) scale = std::max(scale, std::abs(v));
      ASSERT_GT(scale, 0.f) << what;
      for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4 * scale) << what << i;
    };
    expect_close(g[0].batch_norms[0].gamma, g[1].batch_norms[0].gamma, "input BN dgamma ");
    expect_close(g[0].batch_norms[0].beta, g[1].batch_norms[0].beta, "input BN dbeta ");
    expect_close(g[0].convs[0].kernel, g[1].convs[0].kernel, "conv 0 dkernel ");
    expect_close(g[0].convs[0].bias, g[1].convs[0].bias, "conv 0 dbias ");
    expect_close(g[0].convs[1].kernel, g[1].convs[1].kernel, "conv 1 dkernel ");
  }
}

// With T threads a pass cuts the batch into min(T, n) parts run side by side (network.h, Plan).
// Per thread count: the training step (logits, loss, every gradient, the moving statistics it
// updates) and an inference pass match the one-thread network up to float rounding (1e-4
// relative to the largest value of a tensor: the parts' partial sums add in another order), and
// two networks with the same thread count agree bit for bit, also after an Adam step. Cases:
// uneven parts (7 images on 3 threads: 2, 2, 3), both variants, the 2023 first-layer shortcut,
// a network without cells on 3 threads, and a Winograd layer (16 -> 32 channels on 20x20).
struct PartsCase {
  int k, c;
  InputShape in;
  Variant variant;
  int threads, n;
};
class BatchPartsTest : public ::testing::TestWithParam<PartsCase> {};

struct StepResult {
  std::vector<float> logits;
  double loss = 0;
  ModelWeights grads;            // of the training step
  ModelWeights before_step;      // weights with the moving statistics the forward pass updated
  std::vector<float> inference;  // logits of an inference pass with those weights
  ModelWeights after;            // weights after one Adam step
};

StepResult RunStep(const Architecture& arch, int threads, int n) {
  ScopedOmpThreads scoped(threads);
  StepResult r;
  Dataset data = testing::MakeStripes(n, arch.spec.input.height, arch.spec.input.width,
                                      arch.spec.input.channels, 11);
  data.class_names = {"a", "b", "c"};
  std::vector<int64_t> idx(n);
  std::vector<int32_t> labels(n);
  for (int i = 0; i < n; ++i) {
    idx[i] = (i * 5) % n;
    labels[i] = i % 3;
  }
  auto net_or = Network::Create(arch, {n}, true);
  EXPECT_TRUE(net_or.ok()) << net_or.status();
  if (net_or.ok()) {
    Network& net = **net_or;
    net.InitializeKeras(21);
    ModelWeights w = net.GetWeights();
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(-0.3f, 0.3f);
    for (auto& b : w.batch_norms) {
      for (float& v : b.gamma) v = 1.f + u(rng);
      for (float& v : b.beta) v = u(rng);
    }
    EXPECT_TRUE(net.SetWeights(w).ok());
    net.LoadImages(data, idx.data(), n);
    net.set_dropout_state(77);
    EXPECT_TRUE(net.Forward(n, true).ok());
    const int k = arch.spec.classes;
    r.logits.assign(net.logits(), net.logits() + static_cast<size_t>(n) * k);
    int correct = 0;
    r.loss = net.Loss(n, labels.data(), &correct);
    EXPECT_TRUE(net.Backward(n).ok());
    r.grads = net.GetGradients();
    r.before_step = net.GetWeights();
    EXPECT_TRUE(net.Forward(n, false).ok());
    r.inference.assign(net.logits(), net.logits() + static_cast<size_t>(n) * k);
    net.AdamStep(0.01f);
    r.after = net.GetWeights();
  }
  return r;
}

std::vector<std::pair<std::string, const std::vector<float>*>> Tensors(const ModelWeights& w) {
  std::vector<std::pair<std::string, const std::vector<float>*>> t;
  for (size_t i = 0; i < w.convs.size(); ++i) {
    t.push_back({"conv " + std::to_string(i) + " kernel", &w.convs[i].kernel});
    t.push_back({"conv " + std::to_string(i) + " bias", &w.convs[i].bias});
  }
  for (size_t i = 0; i < w.batch_norms.size(); ++i) {
    const std::string bn = "batch norm " + std::to_string(i);
    t.push_back({bn + " gamma", &w.batch_norms[i].gamma});
    t.push_back({bn + " beta", &w.batch_norms[i].beta});
    if (!w.batch_norms[i].moving_mean.empty()) {
      t.push_back({bn + " moving mean", &w.batch_norms[i].moving_mean});
      t.push_back({bn + " moving variance", &w.batch_norms[i].moving_variance});
    }
  }
  t.push_back({"dense kernel", &w.dense.kernel});
  t.push_back({"dense bias", &w.dense.bias});
  return t;
}

void ExpectClose(const std::vector<float>& a, const std::vector<float>& b, const std::string& what,
                 bool exact) {
  ASSERT_EQ(a.size(), b.size()) << what;
  float scale = 0;
  for (float v : b) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < a.size(); ++i) {
    if (exact) {
      ASSERT_EQ(a[i], b[i]) << what << " [" << i << "]";
    } else {
      ASSERT_NEAR(a[i], b[i], 1e-4 * scale + 1e-7) << what << " [" << i << "]";
    }
  }
}

void ExpectSameStep(const StepResult& a, const StepResult& b, bool exact) {
  ExpectClose(a.logits, b.logits, "training logits", exact);
  if (exact) {
    EXPECT_EQ(a.loss, b.loss);
  } else {
    EXPECT_NEAR(a.loss, b.loss, 1e-4 * std::abs(b.loss));
  }
  const auto ga = Tensors(a.grads), gb = Tensors(b.grads);
  ASSERT_EQ(ga.size(), gb.size());
  for (size_t i = 0; i < ga.size(); ++i) {
    ExpectClose(*ga[i].second, *gb[i].second, "gradient of " + ga[i].first, exact);
  }
  const auto sa = Tensors(a.before_step), sb = Tensors(b.before_step);
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    ExpectClose(*sa[i].second, *sb[i].second, sa[i].first + " after the forward pass", exact);
  }
  ExpectClose(a.inference, b.inference, "inference logits", exact);
  // Adam divides by the gradient's own size, so a bias before a batch norm (true gradient 0, a
  // rounding-noise gradient here) moves by about the learning rate either way: the weights after
  // the step are compared only between runs that must agree bit for bit.
  if (!exact) return;
  const auto wa = Tensors(a.after), wb = Tensors(b.after);
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i) {
    ExpectClose(*wa[i].second, *wb[i].second, wa[i].first + " after the step", exact);
  }
}

TEST_P(BatchPartsTest, MatchOneThreadAndAreReproducible) {
  const PartsCase pc = GetParam();
  const Architecture arch = MakeArch(pc.k, pc.c, pc.in, 3, pc.variant);
  const StepResult one = RunStep(arch, 1, pc.n);
  const StepResult many = RunStep(arch, pc.threads, pc.n);
  const StepResult again = RunStep(arch, pc.threads, pc.n);
  ASSERT_FALSE(one.logits.empty());
  float largest = 0;
  for (const auto& [name, t] : Tensors(one.grads)) {
    for (float v : *t) largest = std::max(largest, std::abs(v));
  }
  ASSERT_GT(largest, 1e-4f);  // the gradients are not all zero: the comparison means something
  if (pc.k == 16) {           // the case meant to cover Winograd does: 16 -> 32 channels on 20x20
    ConvShape s;
    s.h = s.w = pc.in.height / 2;
    s.cin = 16;
    s.cout = 32;
    EXPECT_TRUE(WinogradPays(s));
  }
  {
    SCOPED_TRACE("threads vs one thread");
    ExpectSameStep(many, one, false);
  }
  {
    SCOPED_TRACE("same thread count twice");
    ExpectSameStep(again, many, true);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, BatchPartsTest,
                         ::testing::Values(PartsCase{3, 2, {8, 8, 3}, Variant::k2023, 2, 6},
                                           PartsCase{3, 2, {8, 8, 3}, Variant::k2023, 3, 7},
                                           PartsCase{4, 2, {9, 7, 1}, Variant::k2024, 3, 7},
                                           PartsCase{3, 0, {8, 8, 3}, Variant::k2023, 3, 6},
                                           PartsCase{16, 1, {40, 40, 1}, Variant::k2023, 2, 5}));

class InferenceTest : public ::testing::TestWithParam<std::tuple<Variant, int, int, int>> {};

TEST_P(InferenceTest, MatchesNaiveReferenceNetwork) {
  const auto [variant, k, c, channels] = GetParam();
  const Architecture arch = MakeArch(k, c, {13, 11, channels}, 4, variant);
  Dataset data = testing::MakeStripes(7, 13, 11, channels, 9);
  data.class_names = {"a", "b", "c", "d"};
  auto net_or = Network::Create(arch, {7, 3}, false);
  ASSERT_TRUE(net_or.ok()) << net_or.status();
  Network& net = **net_or;
  net.InitializeKeras(3);
  ModelWeights w = net.GetWeights();
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  for (auto& b : w.batch_norms) {
    for (float& v : b.moving_mean) v = u(rng) + (variant == Variant::k2024 ? 0.f : 0.5f);
    for (float& v : b.moving_variance) v = 1.f + u(rng);
    for (float& v : b.beta) v = u(rng);
  }
  for (auto& cw : w.convs)
    for (float& v : cw.bias) v = u(rng);
  ASSERT_TRUE(net.SetWeights(w).ok());
  std::vector<int64_t> idx = {6, 0, 3, 2, 5, 1, 4};
  net.LoadImages(data, idx.data(), 7);
  ASSERT_TRUE(net.Forward(7, false).ok());
  const auto ref = reference::InferLogits(arch, w, data, idx);
  ASSERT_EQ(ref.size(), 7u * 4);
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_NEAR(net.logits()[i], ref[i], 1e-3 * (1 + std::abs(ref[i]))) << i;
  }
  // The partial batch size gives the same logits for its images.
  net.LoadImages(data, idx.data() + 4, 3);
  ASSERT_TRUE(net.Forward(3, false).ok());
  for (size_t i = 0; i < 3 * 4; ++i) {
    EXPECT_NEAR(net.logits()[i], ref[4 * 4 + i], 1e-3 * (1 + std::abs(ref[4 * 4 + i])));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, InferenceTest,
                         ::testing::Values(std::make_tuple(Variant::k2023, 1, 0, 3),
                                           std::make_tuple(Variant::k2023, 4, 2, 3),
                                           std::make_tuple(Variant::k2024, 4, 2, 1),
                                           std::make_tuple(Variant::k2023, 16, 3, 1),
                                           std::make_tuple(Variant::k2024, 16, 3, 3)));

TEST(NetworkTest, WeightsRoundTripThroughTheInternalLayout) {
  const Architecture arch = MakeArch(16, 2, {10, 10, 3}, 5, Variant::k2023);
  auto a = Network::Create(arch, {4}, true);
  auto b = Network::Create(arch, {2}, false);
  ASSERT_TRUE(a.ok() && b.ok());
  (*a)->InitializeKeras(11);
  const ModelWeights w = (*a)->GetWeights();
  ASSERT_EQ(w.convs.size(), 3u);
  ASSERT_EQ(w.batch_norms.size(), 3u);
  EXPECT_EQ(w.convs[1].kernel.size(), 32u * 9 * 16);  // channels 16, 32, 48
  EXPECT_EQ(w.dense.kernel.size(), 5u * w.convs[2].out_channels);
  ASSERT_TRUE((*b)->SetWeights(w).ok());
  const ModelWeights w2 = (*b)->GetWeights();
  for (size_t i = 0; i < w.convs.size(); ++i) EXPECT_EQ(w.convs[i].kernel, w2.convs[i].kernel);
  EXPECT_EQ(w.dense.kernel, w2.dense.kernel);
  // Keras initialisation: Glorot-uniform limits, zero biases, BN identity.
  const float limit = std::sqrt(6.f / (9.f * 16 + 9.f * 32));
  float max_abs = 0;
  for (float v : w.convs[1].kernel) max_abs = std::max(max_abs, std::abs(v));
  EXPECT_LE(max_abs, limit);
  EXPECT_GT(max_abs, 0.9f * limit);
  for (float v : w.convs[1].bias) EXPECT_EQ(v, 0.f);
  for (float v : w.batch_norms[1].gamma) EXPECT_EQ(v, 1.f);
  for (float v : w.batch_norms[1].moving_variance) EXPECT_EQ(v, 1.f);
}

TEST(NetworkTest, RejectsWeightsOfAnotherArchitecture) {
  const Architecture a = MakeArch(4, 1, {8, 8, 3}, 2, Variant::k2023);
  const Architecture b = MakeArch(4, 2, {8, 8, 3}, 2, Variant::k2023);
  const Architecture c = MakeArch(5, 1, {8, 8, 3}, 2, Variant::k2023);
  auto na = Network::Create(a, {2}, false);
  auto nb = Network::Create(b, {2}, false);
  auto nc = Network::Create(c, {2}, false);
  ASSERT_TRUE(na.ok() && nb.ok() && nc.ok());
  const absl::Status s1 = (*na)->SetWeights((*nb)->GetWeights());
  EXPECT_EQ(s1.code(), absl::StatusCode::kInvalidArgument);
  const absl::Status s2 = (*na)->SetWeights((*nc)->GetWeights());
  EXPECT_EQ(s2.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s2.message().find("conv 0"), std::string::npos) << s2;
}

// With one thread and with batch parts on three threads.
TEST(NetworkTest, TrainingStepsAllocateNoBuffers) {
  for (const auto& [v, threads] : {std::pair{Variant::k2023, 1}, std::pair{Variant::k2024, 1},
                                   std::pair{Variant::k2023, 3}, std::pair{Variant::k2024, 3}}) {
    ScopedOmpThreads scoped(threads);
    const Architecture arch = MakeArch(8, 2, {20, 20, 3}, 4, v);
    Dataset data = testing::MakeStripes(40, 20, 20, 3, 2);
    data.class_names = {"a", "b", "c", "d"};
    std::vector<int64_t> idx(40);
    for (int i = 0; i < 40; ++i) idx[i] = (i * 7) % 40;
    std::vector<int32_t> labels(40, 1);
    const int64_t at_start = g_large_allocations.load();
    auto net = Network::Create(arch, {16, 8}, true);
    ASSERT_TRUE(net.ok()) << net.status();
    EXPECT_GT(g_large_allocations.load() - at_start, 10);  // the counter sees the buffers
    auto step = [&](int first, int n) {
      (*net)->LoadImages(data, idx.data() + first, n);
      EXPECT_TRUE((*net)->Forward(n, true).ok());
      int correct = 0;
      (*net)->Loss(n, labels.data(), &correct);
      EXPECT_TRUE((*net)->Backward(n).ok());
      (*net)->AdamStep(1e-3f);
      EXPECT_TRUE((*net)->Forward(n, false).ok());
    };
    step(0, 16);  // warm-up: lazily initialised oneDNN state
    step(16, 8);
    const int64_t before = g_large_allocations.load();
    for (int r = 0; r < 3; ++r) {
      step(0, 16);
      step(16, 16);
      step(32, 8);  // the partial batch has its own primitives, made up front
    }
    EXPECT_EQ(g_large_allocations.load() - before, 0)
        << VariantName(v) << ", " << threads << " threads";
  }
}

TEST(NetworkTest, RejectsUnpreparedBatchSize) {
  const Architecture a = MakeArch(2, 1, {8, 8, 3}, 2, Variant::k2023);
  auto net = Network::Create(a, {4}, true);
  ASSERT_TRUE(net.ok());
  EXPECT_EQ((*net)->Forward(3, true).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Network::Create(a, {}, true).ok());
  EXPECT_FALSE(Network::Create(a, {0}, true).ok());
}

}  // namespace
}  // namespace nanonas::engine

// The replacements pair malloc/aligned_alloc with free; GCC cannot see that they are the pair.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
  if (size >= 4096) g_large_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void* operator new(std::size_t size, std::align_val_t align) {
  if (size >= 4096) g_large_allocations.fetch_add(1, std::memory_order_relaxed);
  const size_t a = static_cast<size_t>(align);
  if (void* p = std::aligned_alloc(a, (size + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
