#include "worker/engine/network.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>

#include <omp.h>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "worker/engine/omp_threads.h"
#include "worker/engine/rng.h"

namespace nanonas::engine {

using dnnl::memory;

namespace {
constexpr uint64_t kInitStream = 1, kDropoutStream = 2;

absl::Status Internal(const char* what, const dnnl::error& e) {
  return absl::InternalError(absl::StrCat("oneDNN ", what, ": ", e.what()));
}
}  // namespace

Network::~Network() = default;

absl::StatusOr<std::unique_ptr<Network>> Network::Create(const Architecture& arch,
                                                         std::vector<int> batch_sizes,
                                                         bool training,
                                                         bool first_layer_shortcut) {
  std::unique_ptr<Network> net(new Network());
  NANONAS_RETURN_IF_ERROR(
      net->Build(arch, std::move(batch_sizes), training, first_layer_shortcut));
  return net;
}

int64_t Network::ActSize(int i) const {
  if (i < static_cast<int>(ops_.size())) {
    const Op& op = ops_[i];
    return static_cast<int64_t>(op.h) * op.w * op.cin;
  }
  const Op& op = ops_.back();
  return static_cast<int64_t>(op.oh) * op.ow * op.cout;
}

// The threads of one pass: thread `thread` of `size` runs parts thread, thread + size, ... of
// the batch (the same parts in every operation, so a part's data stays in one core's cache).
// Each(f): f(part) for the caller's parts. One(f): f() on thread 0 between barriers, for the
// steps that need the whole batch. Outside a parallel region (one part) both simply call f.
struct Network::Team {
  int thread = 0, size = 1, parts = 1;
  template <typename F>
  void Each(F&& f) const {
    for (int p = thread; p < parts; p += size) f(p);
  }
  template <typename F>
  void One(F&& f) const {
    Barrier();
    if (thread == 0) f();
    Barrier();
  }
  void Barrier() const {
    if (size > 1) {
#pragma omp barrier
    }
  }
};

template <typename F>
absl::Status Network::RunTeam(const Plan& plan, const char* what, F&& body) {
  team_error_.clear();
  const int parts = plan.parts();
  if (parts == 1) {
    body(Team{0, 1, 1});
  } else {
#pragma omp parallel num_threads(parts)
    {
      // The runtime may give fewer threads than asked: each thread then runs several parts.
      body(Team{omp_get_thread_num(), omp_get_num_threads(), parts});
    }
  }
  if (!team_error_.empty()) {
    return absl::InternalError(absl::StrCat("oneDNN ", what, ": ", team_error_));
  }
  return absl::OkStatus();
}

void Network::RecordError(const dnnl::error& e) {
#pragma omp critical(nanonas_network_team_error)
  {
    if (team_error_.empty()) team_error_ = e.what();
  }
}

Network::Plan* Network::FindPlan(int n) {
  for (Plan& p : plans_) {
    if (p.n == n) return &p;
  }
  return nullptr;
}

absl::Status Network::Build(const Architecture& arch, std::vector<int> batch_sizes,
                            bool training, bool first_layer_shortcut) {
  arch_ = arch;
  training_ = training;
  std::sort(batch_sizes.begin(), batch_sizes.end());
  batch_sizes.erase(std::unique(batch_sizes.begin(), batch_sizes.end()), batch_sizes.end());
  if (batch_sizes.empty() || batch_sizes.front() < 1) {
    return absl::InvalidArgumentError("network batch sizes must be >= 1 and at least one given");
  }
  max_batch_ = batch_sizes.back();
  input_scale_ = arch.spec.variant == Variant::k2023 ? 1.0f / 255.0f : 1.0f;

  // Operations from the layer list: Rescale goes into LoadImages, Softmax into Loss, a ReLU after
  // a batch norm (2024) is fused into it.
  int n_conv = 0, n_bn = 0;
  for (const Layer& l : arch.layers) {
    Op op{OpKind::kConv, l.in_h, l.in_w, l.in_c, l.out_h, l.out_w, l.out_c};
    switch (l.kind) {
      case LayerKind::kRescale:
      case LayerKind::kSoftmax:
        continue;
      case LayerKind::kReLU:
        if (ops_.empty() || ops_.back().kind != OpKind::kBatchNorm) {
          return absl::InvalidArgumentError("a standalone ReLU must follow a batch norm");
        }
        ops_.back().relu = true;
        continue;
      case LayerKind::kBatchNorm:
        op.kind = OpKind::kBatchNorm;
        op.index = n_bn++;
        break;
      case LayerKind::kConv3x3:
        op.kind = OpKind::kConv;
        op.relu = l.fused_relu;
        op.index = n_conv++;
        break;
      case LayerKind::kMaxPool2x2: op.kind = OpKind::kMaxPool; break;
      case LayerKind::kGlobalAvgPool: op.kind = OpKind::kGlobalAvgPool; break;
      case LayerKind::kDropout: op.kind = OpKind::kDropout; break;
      case LayerKind::kDense: op.kind = OpKind::kDense; break;
    }
    ops_.push_back(op);
  }
  if (ops_.empty() || ops_.back().kind != OpKind::kDense || n_conv != arch.spec.c + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("architecture ", DescribeArchitecture(arch), " is not a NanoNAS network"));
  }

  try {
    engine_ = dnnl::engine(dnnl::engine::kind::cpu, 0);
    stream_ = dnnl::stream(engine_);
  } catch (const dnnl::error& e) {
    return Internal("engine", e);
  }

  first_layer_shortcut_ = first_layer_shortcut && training &&
                          arch.spec.variant == Variant::k2023 && ops_.size() > 1 &&
                          ops_[0].kind == OpKind::kBatchNorm && ops_[1].kind == OpKind::kConv &&
                          !ops_[0].relu;
  // Convolution primitives per batch size and part; the first one fixes the master weights
  // layouts. Parts run one per thread, so their primitives are made for one thread.
  const int threads = std::max(1, omp_get_max_threads());
  conv_master_md_.resize(n_conv);
  size_t scratch = 0;
  int max_parts = 1;
  for (int n : batch_sizes) {
    Plan plan;
    plan.n = n;
    const int parts = std::min(threads, n);
    max_parts = std::max(max_parts, parts);
    for (int p = 0; p <= parts; ++p) {
      plan.part_begin.push_back(static_cast<int>(static_cast<int64_t>(n) * p / parts));
    }
    ScopedOmpThreads primitive_threads(parts > 1 ? 1 : threads);
    plan.convs.resize(n_conv);
    for (size_t i = 0; i < ops_.size(); ++i) {
      const Op& op = ops_[i];
      if (op.kind != OpKind::kConv) continue;
      const bool need_dx = training && i > 0 && !(first_layer_shortcut_ && i == 1);
      plan.convs[op.index].resize(parts);
      for (int p = 0; p < parts; ++p) {
        ConvLayer& conv = plan.convs[op.index][p];
        ConvShape s{plan.part_size(p), op.h, op.w, op.cin, op.cout, op.relu, training, need_dx};
        const bool first = plans_.empty() && p == 0;
        NANONAS_RETURN_IF_ERROR(
            conv.Init(engine_, s, first ? nullptr : &conv_master_md_[op.index]));
        if (first) conv_master_md_[op.index] = conv.master_weights_desc();
        scratch = std::max(scratch, conv.scratchpad_bytes());
      }
    }
    plans_.push_back(std::move(plan));
  }
  try {
    for (int p = 0; p < max_parts; ++p) part_streams_.emplace_back(engine_);
  } catch (const dnnl::error& e) {
    return Internal("streams", e);
  }

  // Parameter arena layout (64-byte aligned tensors).
  auto add = [&](int64_t count) {
    Tensor t{arena_size_, count};
    arena_size_ += (count + 15) / 16 * 16;
    trainable_count_ += count;
    return t;
  };
  conv_w_.resize(n_conv);
  conv_b_.resize(n_conv);
  bn_gamma_.resize(n_bn);
  bn_beta_.resize(n_bn);
  for (const Op& op : ops_) {
    if (op.kind == OpKind::kConv) {
      conv_w_[op.index] = add(conv_master_md_[op.index].get_size() / sizeof(float));
      conv_b_[op.index] = add(op.cout);
    } else if (op.kind == OpKind::kBatchNorm) {
      bn_gamma_[op.index] = add(op.cin);
      bn_beta_[op.index] = add(op.cin);
      bn_kernels_.emplace_back(op.cin, static_cast<int>(part_streams_.size()));
      bn_mean_.emplace_back(op.cin);
      bn_invstd_.emplace_back(op.cin);
      bn_moving_mean_.emplace_back(op.cin, 0.f);
      bn_moving_var_.emplace_back(op.cin, 1.f);
    } else if (op.kind == OpKind::kDense) {
      dense_w_ = add(static_cast<int64_t>(op.cout) * op.cin);
      dense_b_ = add(op.cout);
    }
  }
  const int arenas = training ? 4 : 1;
  params_ = AllocateAligned(arena_size_);
  if (training) {
    param_grads_ = AllocateAligned(arena_size_);
    adam_m_ = AllocateAligned(arena_size_);
    adam_v_ = AllocateAligned(arena_size_);
  }
  buffer_bytes_ = arenas * arena_size_ * static_cast<int64_t>(sizeof(float));
  if (training) {
    for (int p = 1; p < max_parts; ++p) part_grads_.push_back(AllocateAligned(arena_size_));
    buffer_bytes_ += (max_parts - 1) * arena_size_ * static_cast<int64_t>(sizeof(float));
  }

  // Activations, gradients and per-op state, sized for the largest batch.
  for (size_t i = 0; i <= ops_.size(); ++i) {
    acts_.push_back(AllocateAligned(ActSize(i) * max_batch_));
    buffer_bytes_ += ActSize(i) * max_batch_ * static_cast<int64_t>(sizeof(float));
    if (i > 0) max_act_ = std::max(max_act_, ActSize(i));
  }
  if (training) {
    for (AlignedBuffer& g : grads_) g = AllocateAligned(max_act_ * max_batch_);
    dlogits_ = AllocateAligned(ActSize(static_cast<int>(ops_.size())) * max_batch_);
    buffer_bytes_ += (2 * max_act_ + ActSize(static_cast<int>(ops_.size()))) * max_batch_ *
                     static_cast<int64_t>(sizeof(float));
  }
  pool_ws_.resize(ops_.size());
  dropout_mask_.resize(ops_.size());
  for (size_t i = 0; i < ops_.size(); ++i) {
    if (!training) break;
    if (ops_[i].kind == OpKind::kMaxPool) pool_ws_[i].resize(ActSize(i + 1) * max_batch_);
    if (ops_[i].kind == OpKind::kDropout) dropout_mask_[i].resize(ActSize(i + 1) * max_batch_);
    buffer_bytes_ += ActSize(i + 1) * max_batch_ * 5;
  }
  scratch_floats_ = (scratch / sizeof(float) + 16 + 15) / 16 * 16;
  scratchpad_ = AllocateAligned(scratch_floats_ * max_parts);
  buffer_bytes_ += static_cast<int64_t>(scratch_floats_ * max_parts * sizeof(float));

  // Bind every convolution of every plan and part to its slice of the buffers.
  for (Plan& plan : plans_) {
    for (size_t i = 0; i < ops_.size(); ++i) {
      const Op& op = ops_[i];
      if (op.kind != OpKind::kConv) continue;
      for (int p = 0; p < plan.parts(); ++p) {
        const int64_t in_off = plan.part_begin[p] * ActSize(i);
        const int64_t out_off = plan.part_begin[p] * ActSize(i + 1);
        float* grads = !training ? nullptr : p == 0 ? param_grads_.get() : part_grads_[p - 1].get();
        float* gw = training ? grads + conv_w_[op.index].offset : nullptr;
        float* gb = training ? grads + conv_b_[op.index].offset : nullptr;
        const int64_t grad_off = plan.part_begin[p] * max_act_;
        float* dy = training ? grads_[(i + 1) % 2].get() + grad_off : nullptr;
        float* dx = training && i > 0 ? grads_[i % 2].get() + grad_off : nullptr;
        float* grad_src = nullptr;
        if (first_layer_shortcut_ && i == 1) {
          if (dwx_master_ == nullptr) {
            dwx_master_ = AllocateAligned(conv_w_[op.index].count);
            for (int q = 1; q < max_parts; ++q) {
              part_dwx_.push_back(AllocateAligned(conv_w_[op.index].count));
            }
          }
          gw = p == 0 ? dwx_master_.get() : part_dwx_[p - 1].get();
          dx = nullptr;
          grad_src = acts_[0].get() + in_off;
        }
        NANONAS_RETURN_IF_ERROR(plan.convs[op.index][p].Bind(
            acts_[i].get() + in_off, acts_[i + 1].get() + out_off,
            params_.get() + conv_w_[op.index].offset, params_.get() + conv_b_[op.index].offset, dy,
            dx, gw, gb, scratchpad_.get() + p * scratch_floats_, grad_src));
      }
    }
  }
  if (first_layer_shortcut_) NANONAS_RETURN_IF_ERROR(SetUpFirstLayerShortcut());
  InitializeKeras(1);
  return absl::OkStatus();
}

absl::Status Network::SetUpFirstLayerShortcut() {
  const Op& cv = ops_[1];
  const size_t count = static_cast<size_t>(cv.cout) * 9 * cv.cin;
  w_plain_.assign(count, 0.f);
  dwx_plain_.assign(count, 0.f);
  dwz_plain_.assign(count, 0.f);
  const size_t row_sums = part_streams_.size() * cv.w * cv.cout;
  col_sums_.assign(row_sums, 0.f);
  first_row_.assign(row_sums, 0.f);
  last_row_.assign(row_sums, 0.f);
  dw1_.assign(9 * static_cast<size_t>(cv.cout), 0.0);
  try {
    const memory::desc plain({cv.cout, cv.cin, 3, 3}, memory::data_type::f32,
                             memory::format_tag::ohwi);
    const memory::desc& master = conv_master_md_[cv.index];
    auto add = [&](const memory::desc& from_md, void* from, const memory::desc& to_md, void* to) {
      memory a(from_md, engine_, from), b(to_md, engine_, to);
      first_layer_reorders_.push_back({dnnl::reorder(a, b), a, b});
    };
    add(master, params_.get() + conv_w_[cv.index].offset, plain, w_plain_.data());
    add(master, dwx_master_.get(), plain, dwx_plain_.data());
    add(plain, dwz_plain_.data(), master, param_grads_.get() + conv_w_[cv.index].offset);
  } catch (const dnnl::error& e) {
    return Internal("first-layer reorders", e);
  }
  return absl::OkStatus();
}

void Network::Reorder::Run(dnnl::stream& s) const {
  const dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from.get()}, {DNNL_ARG_TO, to.get()}};
  dnnl::error::wrap_c_api(dnnl_primitive_execute(prim.get(), s.get(), 2, args),
                          "could not execute a reorder");
}

void Network::FirstLayerSums(int part, int begin, int count) {
  const Op& cv = ops_[1];
  const int h = cv.h, w = cv.w, O = cv.cout;
  // Sums per (column, o) of dy (the conv output's gradient, ReLU mask applied) over the part's
  // images and rows, and over their first and last rows only.
  const int64_t row_len = static_cast<int64_t>(w) * O;
  float* cols = col_sums_.data() + part * row_len;
  float* first = first_row_.data() + part * row_len;
  float* last = last_row_.data() + part * row_len;
  std::fill(cols, cols + row_len, 0.f);
  std::fill(first, first + row_len, 0.f);
  std::fill(last, last + row_len, 0.f);
  const float* part_dy = grads_[0].get() + begin * max_act_;
  for (int b = 0; b < count; ++b) {
    const float* img = part_dy + static_cast<int64_t>(b) * h * row_len;
    for (int i = 0; i < h; ++i) AccumulateInto(cols, img + i * row_len, row_len);
    AccumulateInto(first, img, row_len);
    AccumulateInto(last, img + (h - 1) * row_len, row_len);
  }
}

void Network::FirstLayerGradients(int parts) {
  const Op& cv = ops_[1];
  const int w = cv.w, C = cv.cin, O = cv.cout;
  const int64_t row_len = static_cast<int64_t>(w) * O;
  for (int p = 1; p < parts; ++p) {
    AccumulateInto(col_sums_.data(), col_sums_.data() + p * row_len, row_len);
    AccumulateInto(first_row_.data(), first_row_.data() + p * row_len, row_len);
    AccumulateInto(last_row_.data(), last_row_.data() + p * row_len, row_len);
    AccumulateInto(dwx_master_.get(), part_dwx_[p - 1].get(), conv_w_[cv.index].count);
  }
  first_layer_reorders_[0].Run(stream_);
  first_layer_reorders_[1].Run(stream_);
  stream_.wait();

  // dW_1[o, di, dj] = sum of dy[., i, j, o] over the output positions whose tap (di, dj) reads
  // inside the image: all positions minus the first/last row and column as the tap requires.
  for (int o = 0; o < O; ++o) {
    double total = 0, row_first = 0, row_last = 0;
    for (int j = 0; j < w; ++j) {
      total += col_sums_[static_cast<size_t>(j) * O + o];
      row_first += first_row_[static_cast<size_t>(j) * O + o];
      row_last += last_row_[static_cast<size_t>(j) * O + o];
    }
    const size_t first_col = o, last_col = static_cast<size_t>(w - 1) * O + o;
    for (int di = 0; di < 3; ++di) {
      for (int dj = 0; dj < 3; ++dj) {
        double v = total;
        if (di == 0) v -= row_first;
        if (di == 2) v -= row_last;
        if (dj == 0) v -= col_sums_[first_col];
        if (dj == 2) v -= col_sums_[last_col];
        // Corners were subtracted twice.
        if (di != 1 && dj != 1) {
          const std::vector<float>& r = di == 0 ? first_row_ : last_row_;
          v += r[dj == 0 ? first_col : last_col];
        }
        dw1_[static_cast<size_t>(o) * 9 + di * 3 + dj] = v;
      }
    }
  }

  const Op& bn = ops_[0];
  const float* gamma = params_.get() + bn_gamma_[bn.index].offset;
  const float* beta = params_.get() + bn_beta_[bn.index].offset;
  const float* mean = bn_mean_[bn.index].data();
  const float* invstd = bn_invstd_[bn.index].data();
  float* dgamma = param_grads_.get() + bn_gamma_[bn.index].offset;
  float* dbeta = param_grads_.get() + bn_beta_[bn.index].offset;
  for (int c = 0; c < C; ++c) {
    const double a = static_cast<double>(gamma[c]) * invstd[c];
    const double b = beta[c] - mean[c] * a;
    double dg = 0, db = 0;
    for (int o = 0; o < O; ++o) {
      for (int t = 0; t < 9; ++t) {
        const size_t idx = (static_cast<size_t>(o) * 9 + t) * C + c;
        const double d1 = dw1_[static_cast<size_t>(o) * 9 + t];
        dwz_plain_[idx] = static_cast<float>(a * dwx_plain_[idx] + b * d1);
        dg += w_plain_[idx] * (dwx_plain_[idx] - mean[c] * d1);
        db += w_plain_[idx] * d1;
      }
    }
    dgamma[c] = static_cast<float>(dg * invstd[c]);
    dbeta[c] = static_cast<float>(db);
  }
  first_layer_reorders_[2].Run(stream_);
  stream_.wait();
}

void Network::PlainToMaster(int conv, const float* ohwi, float* arena) const {
  const Op* op = nullptr;
  for (const Op& o : ops_) {
    if (o.kind == OpKind::kConv && o.index == conv) op = &o;
  }
  const memory::desc plain({op->cout, op->cin, 3, 3}, memory::data_type::f32,
                           memory::format_tag::ohwi);
  memory src(plain, engine_, const_cast<float*>(ohwi));
  memory dst(conv_master_md_[conv], engine_, arena);
  dnnl::stream s(engine_);
  dnnl::reorder(src, dst).execute(s, src, dst);
  s.wait();
}

void Network::MasterToPlain(int conv, const float* arena, float* ohwi) const {
  const Op* op = nullptr;
  for (const Op& o : ops_) {
    if (o.kind == OpKind::kConv && o.index == conv) op = &o;
  }
  const memory::desc plain({op->cout, op->cin, 3, 3}, memory::data_type::f32,
                           memory::format_tag::ohwi);
  memory src(conv_master_md_[conv], engine_, const_cast<float*>(arena));
  memory dst(plain, engine_, ohwi);
  dnnl::stream s(engine_);
  dnnl::reorder(src, dst).execute(s, src, dst);
  s.wait();
}

void Network::InitializeKeras(uint64_t seed) {
  Rng rng(DeriveSeed(seed, kInitStream));
  std::fill(params_.get(), params_.get() + arena_size_, 0.f);
  for (const Op& op : ops_) {
    if (op.kind == OpKind::kConv) {
      const float limit = std::sqrt(6.0f / (9.0f * op.cin + 9.0f * op.cout));
      std::vector<float> k(static_cast<size_t>(op.cout) * 9 * op.cin);
      for (float& v : k) v = rng.Uniform(-limit, limit);
      PlainToMaster(op.index, k.data(), params_.get() + conv_w_[op.index].offset);
    } else if (op.kind == OpKind::kBatchNorm) {
      std::fill_n(params_.get() + bn_gamma_[op.index].offset, op.cin, 1.f);
      std::fill(bn_moving_mean_[op.index].begin(), bn_moving_mean_[op.index].end(), 0.f);
      std::fill(bn_moving_var_[op.index].begin(), bn_moving_var_[op.index].end(), 1.f);
    } else if (op.kind == OpKind::kDense) {
      const float limit = std::sqrt(6.0f / static_cast<float>(op.cin + op.cout));
      float* w = params_.get() + dense_w_.offset;
      for (int64_t i = 0; i < dense_w_.count; ++i) w[i] = rng.Uniform(-limit, limit);
    }
  }
  if (training_) {
    std::fill(adam_m_.get(), adam_m_.get() + arena_size_, 0.f);
    std::fill(adam_v_.get(), adam_v_.get() + arena_size_, 0.f);
    std::fill(param_grads_.get(), param_grads_.get() + arena_size_, 0.f);
  }
  adam_t_ = 0;
  dropout_state_ = DeriveSeed(seed, kDropoutStream);
}

absl::Status Network::SetWeights(const ModelWeights& w) {
  const size_t n_conv = conv_w_.size(), n_bn = bn_gamma_.size();
  if (w.convs.size() != n_conv || w.batch_norms.size() != n_bn) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights have ", w.convs.size(), " convolutions and ", w.batch_norms.size(),
        " batch norms; ", DescribeArchitecture(arch_), " needs ", n_conv, " and ", n_bn));
  }
  for (const Op& op : ops_) {
    if (op.kind == OpKind::kConv) {
      const ConvWeights& c = w.convs[op.index];
      if (c.in_channels != op.cin || c.out_channels != op.cout ||
          c.kernel.size() != static_cast<size_t>(op.cout) * 9 * op.cin ||
          c.bias.size() != static_cast<size_t>(op.cout)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "conv ", op.index, " weights do not match: expected ", op.cin, "->", op.cout,
            " channels with kernel (", op.cout, ",3,3,", op.cin, ") and bias (", op.cout, ")"));
      }
    } else if (op.kind == OpKind::kBatchNorm) {
      const BatchNormWeights& b = w.batch_norms[op.index];
      const size_t c = op.cin;
      if (b.gamma.size() != c || b.beta.size() != c || b.moving_mean.size() != c ||
          b.moving_variance.size() != c) {
        return absl::InvalidArgumentError(absl::StrCat("batch norm ", op.index, " weights need ",
                                                       c, " values per statistic"));
      }
    } else if (op.kind == OpKind::kDense) {
      if (w.dense.in_features != op.cin || w.dense.out_features != op.cout ||
          w.dense.kernel.size() != static_cast<size_t>(op.cin) * op.cout ||
          w.dense.bias.size() != static_cast<size_t>(op.cout)) {
        return absl::InvalidArgumentError(absl::StrCat("dense weights must be (", op.cout, ", ",
                                                       op.cin, ") with bias (", op.cout, ")"));
      }
    }
  }
  try {
    for (const Op& op : ops_) {
      if (op.kind == OpKind::kConv) {
        const ConvWeights& c = w.convs[op.index];
        PlainToMaster(op.index, c.kernel.data(), params_.get() + conv_w_[op.index].offset);
        std::copy(c.bias.begin(), c.bias.end(), params_.get() + conv_b_[op.index].offset);
      } else if (op.kind == OpKind::kBatchNorm) {
        const BatchNormWeights& b = w.batch_norms[op.index];
        std::copy(b.gamma.begin(), b.gamma.end(), params_.get() + bn_gamma_[op.index].offset);
        std::copy(b.beta.begin(), b.beta.end(), params_.get() + bn_beta_[op.index].offset);
        bn_moving_mean_[op.index] = b.moving_mean;
        bn_moving_var_[op.index] = b.moving_variance;
      }
    }
  } catch (const dnnl::error& e) {
    return Internal("weights reorder", e);
  }
  std::copy(w.dense.kernel.begin(), w.dense.kernel.end(), params_.get() + dense_w_.offset);
  std::copy(w.dense.bias.begin(), w.dense.bias.end(), params_.get() + dense_b_.offset);
  return absl::OkStatus();
}

ModelWeights Network::ParamsAsWeights(const float* p) const {
  // p: params_ or param_grads_, both laid out by the same offsets.
  ModelWeights w;
  w.convs.resize(conv_w_.size());
  w.batch_norms.resize(bn_gamma_.size());
  for (const Op& op : ops_) {
    if (op.kind == OpKind::kConv) {
      ConvWeights& c = w.convs[op.index];
      c.in_channels = op.cin;
      c.out_channels = op.cout;
      c.kernel.resize(static_cast<size_t>(op.cout) * 9 * op.cin);
      MasterToPlain(op.index, p + conv_w_[op.index].offset, c.kernel.data());
      c.bias.assign(p + conv_b_[op.index].offset, p + conv_b_[op.index].offset + op.cout);
    } else if (op.kind == OpKind::kBatchNorm) {
      BatchNormWeights& b = w.batch_norms[op.index];
      b.channels = op.cin;
      b.gamma.assign(p + bn_gamma_[op.index].offset, p + bn_gamma_[op.index].offset + op.cin);
      b.beta.assign(p + bn_beta_[op.index].offset, p + bn_beta_[op.index].offset + op.cin);
    } else if (op.kind == OpKind::kDense) {
      w.dense.in_features = op.cin;
      w.dense.out_features = op.cout;
      w.dense.kernel.assign(p + dense_w_.offset, p + dense_w_.offset + dense_w_.count);
      w.dense.bias.assign(p + dense_b_.offset, p + dense_b_.offset + dense_b_.count);
    }
  }
  return w;
}

ModelWeights Network::GetWeights() const {
  ModelWeights w = ParamsAsWeights(params_.get());
  for (const Op& op : ops_) {
    if (op.kind != OpKind::kBatchNorm) continue;
    BatchNormWeights& b = w.batch_norms[op.index];
    b.moving_mean = bn_moving_mean_[op.index];
    b.moving_variance = bn_moving_var_[op.index];
    b.epsilon = kBatchNormEpsilon;
  }
  return w;
}

ModelWeights Network::GetGradients() const {
  if (!training_) {
    ModelWeights w;
    w.convs.resize(conv_w_.size());
    w.batch_norms.resize(bn_gamma_.size());
    return w;
  }
  return ParamsAsWeights(param_grads_.get());
}

void Network::LoadImages(const Dataset& data, const int64_t* indices, int n) {
  GatherImages(data.images.data(), data.image_bytes(), indices, n, input_scale_, acts_[0].get());
}

absl::Status Network::Forward(int n, bool training) {
  Plan* plan = FindPlan(n);
  if (plan == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("batch size ", n, " was not prepared"));
  }
  if (training && !training_) {
    return absl::FailedPreconditionError("training forward pass on an inference network");
  }
  return RunTeam(*plan, "forward pass",
                 [&](const Team& t) { ForwardOps(t, plan, n, training); });
}

void Network::ForwardOps(const Team& t, Plan* plan, int n, bool training) {
  float* p = params_.get();
  const std::vector<int>& begin = plan->part_begin;
  for (size_t i = 0; i < ops_.size(); ++i) {
    const Op& op = ops_[i];
    const float* x = acts_[i].get();
    float* y = acts_[i + 1].get();
    const int64_t in = ActSize(static_cast<int>(i)), out = ActSize(static_cast<int>(i) + 1);
    switch (op.kind) {
      case OpKind::kBatchNorm: {
        const int b = op.index;
        BatchNormKernel& k = bn_kernels_[b];
        const int64_t hw = static_cast<int64_t>(op.h) * op.w;
        if (training) {
          t.Each([&](int q) { k.ForwardStats(x + begin[q] * in, plan->part_size(q) * hw, q); });
          t.One([&] {
            k.ForwardFinish(plan->parts(), n * hw, p + bn_gamma_[b].offset,
                            p + bn_beta_[b].offset, kBatchNormEpsilon, kBatchNormMomentum,
                            bn_mean_[b].data(), bn_invstd_[b].data(), bn_moving_mean_[b].data(),
                            bn_moving_var_[b].data());
          });
        } else {
          t.One([&] {
            k.InferenceCoefficients(p + bn_gamma_[b].offset, p + bn_beta_[b].offset,
                                    bn_moving_mean_[b].data(), bn_moving_var_[b].data(),
                                    kBatchNormEpsilon);
          });
        }
        t.Each([&](int q) {
          k.Apply(x + begin[q] * in, plan->part_size(q) * hw, op.relu, y + begin[q] * out);
        });
        break;
      }
      case OpKind::kConv:
        t.Each([&](int q) {
          try {
            plan->convs[op.index][q].Forward(part_streams_[q]);
            part_streams_[q].wait();
          } catch (const dnnl::error& e) {
            RecordError(e);
          }
        });
        break;
      case OpKind::kMaxPool:
        t.Each([&](int q) {
          const int m = plan->part_size(q);
          if (training) {
            MaxPoolForward(x + begin[q] * in, m, op.h, op.w, op.cin, y + begin[q] * out,
                           pool_ws_[i].data() + begin[q] * out);
          } else {
            MaxPoolForwardInference(x + begin[q] * in, m, op.h, op.w, op.cin, y + begin[q] * out);
          }
        });
        break;
      case OpKind::kGlobalAvgPool:
        t.Each([&](int q) {
          GlobalAvgPoolForward(x + begin[q] * in, plan->part_size(q), op.h * op.w, op.cin,
                               y + begin[q] * out);
        });
        break;
      case OpKind::kDropout:
        if (training) {
          // One random stream over the whole batch, as with one thread.
          t.One([&] {
            DropoutForward(x, static_cast<int64_t>(n) * op.cin, kDropoutRate, &dropout_state_,
                           dropout_mask_[i].data(), y);
          });
        } else {
          t.Each([&](int q) {
            std::memcpy(y + begin[q] * out, x + begin[q] * in,
                        sizeof(float) * plan->part_size(q) * op.cin);
          });
        }
        break;
      case OpKind::kDense:
        t.Each([&](int q) {
          DenseForward(x + begin[q] * in, plan->part_size(q), op.cin, op.cout,
                       p + dense_w_.offset, p + dense_b_.offset, y + begin[q] * out);
        });
        break;
    }
  }
}

double Network::Loss(int n, const int32_t* labels, int* correct) {
  const int k = ops_.back().cout;
  float* dlogits = training_ ? dlogits_.get() : nullptr;
  return SoftmaxCrossEntropy(acts_.back().get(), labels, n, k, nullptr, dlogits, correct);
}

bool Network::producer_relu(size_t i) const { return i > 0 && ops_[i - 1].relu; }

bool Network::consumer_masks_relu(size_t i) const {
  return i + 1 < ops_.size() &&
         (ops_[i + 1].kind == OpKind::kMaxPool || ops_[i + 1].kind == OpKind::kGlobalAvgPool);
}

absl::Status Network::Backward(int n) {
  Plan* plan = FindPlan(n);
  if (plan == nullptr || !training_) {
    return absl::FailedPreconditionError(
        "backward pass needs a training network and a prepared batch size");
  }
  return RunTeam(*plan, "backward pass", [&](const Team& t) { BackwardOps(t, plan, n); });
}

void Network::BackwardOps(const Team& t, Plan* plan, int n) {
  float* p = params_.get();
  float* g = param_grads_.get();
  const std::vector<int>& begin = plan->part_begin;
  // Gradients live in the two ping-pong buffers with part q at begin[q] * max_act_, whatever the
  // operation: a thread that runs ahead into the next operation never writes over a part that
  // another thread still reads. (Activations, one buffer per operation, are batch-contiguous.)
  auto part_grad = [&](float* buffer, int q) { return buffer + begin[q] * max_act_; };
  for (int i = static_cast<int>(ops_.size()) - 1; i >= 0; --i) {
    if (first_layer_shortcut_ && i == 0) break;  // done by FirstLayerGradients
    const Op& op = ops_[i];
    const float* x = acts_[i].get();
    const float* y = acts_[i + 1].get();
    float* dy = grads_[(i + 1) % 2].get();
    float* dx = i > 0 ? grads_[i % 2].get() : nullptr;
    const int64_t in = ActSize(i), out = ActSize(i + 1);
    switch (op.kind) {
      case OpKind::kBatchNorm: {
        const int b = op.index;
        BatchNormKernel& k = bn_kernels_[b];
        const int64_t hw = static_cast<int64_t>(op.h) * op.w;
        t.Each([&](int q) {
          k.BackwardStats(x + begin[q] * in, y + begin[q] * out, part_grad(dy, q),
                          plan->part_size(q) * hw, op.relu, q);
        });
        t.One([&] {
          k.BackwardFinish(plan->parts(), n * hw, p + bn_gamma_[b].offset, bn_mean_[b].data(),
                           bn_invstd_[b].data(), g + bn_gamma_[b].offset, g + bn_beta_[b].offset);
        });
        if (dx != nullptr) {
          t.Each([&](int q) {
            k.BackwardApply(x + begin[q] * in, y + begin[q] * out, part_grad(dy, q),
                            plan->part_size(q) * hw, op.relu, part_grad(dx, q));
          });
        }
        break;
      }
      case OpKind::kConv: {
        // A following max pool or global average pool applied the ReLU mask already.
        const bool mask = op.relu && !consumer_masks_relu(i);
        const bool shortcut = first_layer_shortcut_ && i == 1;
        t.Each([&](int q) {
          const int m = plan->part_size(q);
          if (mask) ReluBackwardInPlace(y + begin[q] * out, m * out, part_grad(dy, q));
          try {
            ConvLayer& conv = plan->convs[op.index][q];
            conv.BackwardWeights(part_streams_[q]);
            if (!shortcut && dx != nullptr) conv.BackwardData(part_streams_[q]);
            part_streams_[q].wait();
          } catch (const dnnl::error& e) {
            RecordError(e);
          }
          if (shortcut) FirstLayerSums(q, begin[q], m);
        });
        if (shortcut) {
          t.One([&] {
            try {
              FirstLayerGradients(plan->parts());
            } catch (const dnnl::error& e) {
              RecordError(e);
            }
          });
        }
        break;
      }
      case OpKind::kMaxPool:
        if (dx != nullptr) {
          t.Each([&](int q) {
            MaxPoolBackward(part_grad(dy, q), pool_ws_[i].data() + begin[q] * out,
                            plan->part_size(q), op.h, op.w, op.cin, part_grad(dx, q),
                            producer_relu(i) ? y + begin[q] * out : nullptr);
          });
        }
        break;
      case OpKind::kGlobalAvgPool:
        if (dx != nullptr) {
          t.Each([&](int q) {
            GlobalAvgPoolBackward(part_grad(dy, q), plan->part_size(q), op.h * op.w, op.cin,
                                  part_grad(dx, q),
                                  producer_relu(i) ? x + begin[q] * in : nullptr);
          });
        }
        break;
      case OpKind::kDropout:
        if (dx != nullptr) {
          t.Each([&](int q) {
            DropoutBackward(part_grad(dy, q), dropout_mask_[i].data() + begin[q] * out,
                            plan->part_size(q) * op.cin, part_grad(dx, q));
          });
        }
        break;
      case OpKind::kDense: {
        // dy: the loss gradient (batch-contiguous, its own buffer). The weight gradient sums over
        // the whole batch (a few hundred values): one thread; the input gradient per part.
        const float* dlogits = dlogits_.get();
        t.One([&] {
          DenseBackward(x, dlogits, n, op.cin, op.cout, p + dense_w_.offset, g + dense_w_.offset,
                        g + dense_b_.offset, nullptr);
        });
        if (dx != nullptr) {
          t.Each([&](int q) {
            DenseBackwardInput(dlogits + begin[q] * out, plan->part_size(q), op.cin, op.cout,
                               p + dense_w_.offset, part_grad(dx, q));
          });
        }
        break;
      }
    }
  }
  // The parts' convolution gradients into param_grads_, in part order; each thread sums a slice.
  if (plan->parts() > 1) {
    t.Barrier();
    const int64_t per = ((arena_size_ + t.size - 1) / t.size + 15) / 16 * 16;
    const int64_t lo = std::min(arena_size_, t.thread * per);
    const int64_t hi = std::min(arena_size_, lo + per);
    for (int q = 1; q < plan->parts() && lo < hi; ++q) {
      AccumulateInto(g + lo, part_grads_[q - 1].get() + lo, hi - lo);
    }
  }
}

void Network::AdamStep(float learning_rate) {
  ++adam_t_;
  const double t = static_cast<double>(adam_t_);
  const double lr_t = learning_rate * std::sqrt(1.0 - std::pow(double{kAdamBeta2}, t)) /
                      (1.0 - std::pow(double{kAdamBeta1}, t));
  AdamUpdate(params_.get(), param_grads_.get(), adam_m_.get(), adam_v_.get(), arena_size_,
             static_cast<float>(lr_t), kAdamBeta1, kAdamBeta2, kAdamEpsilon);
}

}  // namespace nanonas::engine
