// Diagnostic (not a test): where does a trained model lose accuracy when quantized?
// Trains a NanoNAS model on the first N Fashion-MNIST images (or loads weights saved by an
// earlier run), quantizes it as the exporter does and compares every tensor of the integer graph,
// dequantized, with the float graph's on test images: relative RMS error per tensor, plus the
// relative error of each MUL/ADD constant and the float vs quantized test accuracy.
//
//   export_quant_diag --k 4 --c 2 --images 10000 --epochs 10 --weights /tmp/w.bin --test 2000
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <string>

#include "common/data/dataset.h"
#include "common/export/graph.h"
#include "common/export/inference.h"
#include "common/export/quantize.h"
#include "worker/engine/trainer.h"

namespace nanonas {
namespace {

void PutVec(std::ofstream& f, const std::vector<float>& v) {
  const uint64_t n = v.size();
  f.write(reinterpret_cast<const char*>(&n), sizeof n);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(n * sizeof(float)));
}
bool GetVec(std::ifstream& f, std::vector<float>* v) {
  uint64_t n = 0;
  if (!f.read(reinterpret_cast<char*>(&n), sizeof n)) return false;
  v->resize(n);
  return static_cast<bool>(
      f.read(reinterpret_cast<char*>(v->data()), static_cast<std::streamsize>(n * sizeof(float))));
}

void Save(const std::string& path, const ModelWeights& w) {
  std::ofstream f(path, std::ios::binary);
  for (const ConvWeights& c : w.convs) PutVec(f, c.kernel), PutVec(f, c.bias);
  for (const BatchNormWeights& b : w.batch_norms) {
    PutVec(f, b.gamma), PutVec(f, b.beta), PutVec(f, b.moving_mean), PutVec(f, b.moving_variance);
  }
  PutVec(f, w.dense.kernel), PutVec(f, w.dense.bias);
}

bool Load(const std::string& path, ModelWeights* w) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  for (ConvWeights& c : w->convs) {
    if (!GetVec(f, &c.kernel) || !GetVec(f, &c.bias)) return false;
  }
  for (BatchNormWeights& b : w->batch_norms) {
    if (!GetVec(f, &b.gamma) || !GetVec(f, &b.beta) || !GetVec(f, &b.moving_mean) ||
        !GetVec(f, &b.moving_variance)) {
      return false;
    }
  }
  return GetVec(f, &w->dense.kernel) && GetVec(f, &w->dense.bias);
}

int Run(int argc, char** argv) {
  int k = 4, c = 2, images = 10000, epochs = 10, test = 2000;
  float lr = 0.01f;
  std::string weights_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--k") k = std::stoi(v);
    if (a == "--c") c = std::stoi(v);
    if (a == "--images") images = std::stoi(v);
    if (a == "--epochs") epochs = std::stoi(v);
    if (a == "--test") test = std::stoi(v);
    if (a == "--lr") lr = std::stof(v);
    if (a == "--weights") weights_path = v;
  }
  auto all = LoadFashionMnist(true);
  auto test_data = LoadFashionMnist(false);
  if (!all.ok() || !test_data.ok()) {
    std::cerr << all.status() << test_data.status() << "\n";
    return 1;
  }
  Dataset data = *all;
  data.labels.resize(images);
  data.images.resize(static_cast<size_t>(images) * 28 * 28);
  CandidateSpec spec;
  spec.k = k, spec.c = c, spec.input = {28, 28, 1}, spec.classes = 10;
  auto arch = BuildArchitecture(spec);
  if (!arch.ok()) return std::cerr << arch.status() << "\n", 1;
  auto split = SplitTrainValidation(data, 0.2, 1);
  ModelWeights w = PlaceholderWeights(*arch);
  if (weights_path.empty() || !Load(weights_path, &w)) {
    TrainOptions o;
    o.epochs = epochs, o.learning_rate = lr,
    o.batch_size = std::getenv("BATCH") ? std::atoi(std::getenv("BATCH")) : 128, o.threads = 2;
    auto r = Train(*arch, data, *split, o);
    if (!r.ok()) return std::cerr << r.status() << "\n", 1;
    w = *r->best_weights;
    std::printf("trained: best val %.4f epoch %d (%.0f s)\n", r->best_validation_accuracy,
                r->best_epoch, r->seconds);
    if (!weights_path.empty()) Save(weights_path, w);
  }
  for (size_t i = 0; i < w.batch_norms.size(); ++i) {
    const BatchNormWeights& b = w.batch_norms[i];
    std::printf("bn%zu mul:", i);
    for (int ch = 0; ch < b.channels; ++ch) {
      std::printf(" %.3g", b.gamma[ch] / std::sqrt(b.moving_variance[ch] + b.epsilon));
    }
    std::printf("\n");
  }
  std::vector<int64_t> rep(split->train.begin(), split->train.begin() + 150);
  const bool equalize = std::getenv("EQ") != nullptr;
  auto fg = BuildFloatGraph(*arch, w);
  if (equalize && fg.ok()) {
    auto ranges = Calibrate(*fg, data, rep);
    if (!ranges.ok()) return std::cerr << ranges.status() << "\n", 1;
    fg = EqualizeChannels(*fg, *ranges);
  }
  QuantizeOptions qo;
  qo.equalize = equalize;
  if (const char* span = std::getenv("SPAN")) qo.logit_span = std::stof(span);
  auto qg = QuantizeModel(*arch, w, data, rep, kMinRepresentativeImages, qo);
  if (!fg.ok() || !qg.ok()) return std::cerr << fg.status() << qg.status() << "\n", 1;
  if (const char* lo = std::getenv("FCSPAN")) {
    for (const GraphOp& op : qg->ops) {
      if (op.kind != OpKind::kFullyConnected) continue;
      GraphTensor& t = qg->tensors[op.outputs[0]];
      const float mx = t.quant.scale[0] * (127 - t.quant.zero_point[0]);
      float scale;
      int32_t zp;
      AsymmetricParams(mx - std::stof(lo), mx, &scale, &zp);
      t.quant.scale = {scale};
      t.quant.zero_point = {zp};
    }
  }
  std::cout << FormatGraph(*qg) << "\n";
  // Constants of MUL/ADD: relative error per element.
  for (const GraphOp& op : qg->ops) {
    if (op.kind != OpKind::kMul && op.kind != OpKind::kAdd) continue;
    const GraphTensor& qt = qg->tensor(op.inputs[1]);
    const GraphTensor& ft = fg->tensor(op.inputs[1] - 1);
    std::printf("%s const s=%.4g zp=%lld:", OpKindName(op.kind), qt.quant.scale[0],
                static_cast<long long>(qt.quant.zero_point[0]));
    for (size_t i = 0; i < ft.values.size(); ++i) {
      const float dq =
          qt.quant.scale[0] * (static_cast<int8_t>(qt.data[i]) - qt.quant.zero_point[0]);
      std::printf(" %.4g->%.4g", ft.values[i], dq);
    }
    std::printf("\n");
  }
  // Per-tensor relative RMS over `test` test images.
  const size_t nt = fg->tensors.size();
  std::vector<double> err2(nt, 0), ref2(nt, 0);
  std::vector<std::vector<double>> ch_err(nt), ch_err2(nt), ch_ref2(nt);
  int fright = 0, qright = 0, agree = 0;
  auto fv_size = [&](size_t t) {
    return static_cast<size_t>(fg->tensor(static_cast<int>(t)).num_elements());
  };
  for (int i = 0; i < test; ++i) {
    std::vector<std::vector<float>> fv;
    std::vector<std::vector<int32_t>> qv;
    auto fo = RunFloatGraph(*fg, test_data->image(i), &fv);
    auto qo = RunIntegerGraph(*qg, test_data->image(i), &qv);
    const int label = test_data->labels[i];
    fright += Argmax(*fo) == label;
    qright += Argmax(*qo) == label;
    agree += Argmax(*fo) == Argmax(*qo);
    for (size_t t = 0; t < nt; ++t) {
      const GraphTensor& q = qg->tensor(static_cast<int>(t) + 1);
      if (fg->tensor(static_cast<int>(t)).constant || q.quant.empty()) continue;
      for (size_t j = 0; j < fv[t].size(); ++j) {
        const double dq = q.quant.scale[0] * (qv[t + 1][j] - q.quant.zero_point[0]);
        err2[t] += (dq - fv[t][j]) * (dq - fv[t][j]);
        const size_t ch = j % static_cast<size_t>(q.shape.back());
        if (ch_err[t].empty()) {
          ch_err[t].assign(q.shape.back(), 0);
          ch_err2[t].assign(q.shape.back(), 0);
          ch_ref2[t].assign(q.shape.back(), 0);
        }
        ch_err[t][ch] += dq - fv[t][j];
        ch_err2[t][ch] += (dq - fv[t][j]) * (dq - fv[t][j]);
        ch_ref2[t][ch] += static_cast<double>(fv[t][j]) * fv[t][j];
        ref2[t] += static_cast<double>(fv[t][j]) * fv[t][j];
      }
    }
  }
  for (size_t t = 0; t < nt; ++t) {
    const GraphTensor& q = qg->tensor(static_cast<int>(t) + 1);
    if (fg->tensor(static_cast<int>(t)).constant || ref2[t] == 0) continue;
    std::printf("%-14s scale %.5f zp %4lld  rel RMS %.4f\n", q.name.c_str(), q.quant.scale[0],
                static_cast<long long>(q.quant.zero_point[0]), std::sqrt(err2[t] / ref2[t]));
    if (std::getenv("CHANNELS")) {
      const double n = static_cast<double>(ch_err[t].size()) / static_cast<double>(fv_size(t));
      (void)n;
      for (size_t ch = 0; ch < ch_err[t].size(); ++ch) {
        const double cnt =
            static_cast<double>(test) * static_cast<double>(fv_size(t)) / ch_err[t].size();
        std::printf("    ch%zu bias %+.4f rms err %.4f ref rms %.4f\n", ch, ch_err[t][ch] / cnt,
                    std::sqrt(ch_err2[t][ch] / cnt), std::sqrt(ch_ref2[t][ch] / cnt));
      }
    }
  }
  std::printf("test %d: float %.4f quantized %.4f argmax agreement %.4f\n", test,
              static_cast<double>(fright) / test, static_cast<double>(qright) / test,
              static_cast<double>(agree) / test);
  return 0;
}

}  // namespace
}  // namespace nanonas

int main(int argc, char** argv) { return nanonas::Run(argc, argv); }
