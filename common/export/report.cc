#include "common/export/report.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/api/states.h"
#include "nlohmann/json.hpp"

namespace nanonas {
namespace {

namespace v1 = nanonas::v1;
using nlohmann::json;

std::string Time(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

json Epochs(const google::protobuf::RepeatedPtrField<v1::EpochResult>& epochs) {
  json a = json::array();
  for (const v1::EpochResult& e : epochs) {
    a.push_back({{"epoch", e.epoch()},
                 {"train_loss", e.train_loss()},
                 {"train_accuracy", e.train_accuracy()},
                 {"validation_loss", e.validation_loss()},
                 {"validation_accuracy", e.validation_accuracy()},
                 {"seconds", e.seconds()}});
  }
  return a;
}

std::vector<const v1::Candidate*> PathInOrder(const v1::Job& job) {
  std::vector<const v1::Candidate*> path;
  for (const v1::Candidate& c : job.candidates()) path.push_back(&c);
  std::stable_sort(path.begin(), path.end(), [](const v1::Candidate* a, const v1::Candidate* b) {
    return a->sequence() < b->sequence();
  });
  return path;
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t') out.push_back(c);
    }
  }
  return out;
}

std::string ShortResource(const std::string& r) {
  if (r == "ram_bytes") return "RAM";
  if (r == "flash_bytes") return "Flash";
  if (r == "macc") return "MACC";
  if (r == "host_memory_bytes") return "host mem";
  return r;
}

std::string Limit(int64_t value, const char* unit) {
  return value > 0 ? absl::StrCat(value, unit) : "none";
}

json JobJson(const v1::Job& job) {
  return {{"id", job.id()},
          {"name", job.spec().name()},
          {"state", JobStateName(job.state())},
          {"error", job.error()},
          {"created", Time(job.created())},
          {"started", Time(job.started())},
          {"finished", Time(job.finished())},
          {"num_classes", job.num_classes()},
          {"class_names",
           std::vector<std::string>(job.class_names().begin(), job.class_names().end())}};
}

json SpecJson(const v1::JobSpec& s) {
  return {{"dataset_id", s.dataset_id()},
          {"test_dataset_id", s.test_dataset_id()},
          {"input",
           {{"height", s.input().height()},
            {"width", s.input().width()},
            {"channels", s.input().channels()}}},
          {"variant", s.variant().empty() ? "2023" : s.variant()},
          {"validation_split", s.validation_split()},
          {"constraints",
           {{"ram_bytes", s.constraints().ram_bytes()},
            {"flash_bytes", s.constraints().flash_bytes()},
            {"macc", s.constraints().macc()},
            {"host_memory_bytes", s.constraints().host_memory_bytes()},
            {"target", s.constraints().target()}}},
          {"evaluation",
           {{"epochs", s.evaluation().epochs()},
            {"learning_rate", s.evaluation().learning_rate()},
            {"batch_size", s.evaluation().batch_size()},
            {"seed", s.evaluation().seed()}}}};
}

json CandidateJson(const v1::Candidate& c) {
  json violations = json::array();
  for (const v1::Violation& v : c.violations()) {
    violations.push_back({{"resource", v.resource()},
                          {"value", v.value()},
                          {"limit", v.limit()},
                          {"excess", v.excess()}});
  }
  return {{"sequence", c.sequence()},
          {"k", c.k()},
          {"c", c.c()},
          {"state", CandidateStateName(c.state())},
          {"macc", c.macc()},
          {"flash_bytes", c.flash_bytes()},
          {"ram_bytes", c.ram_bytes()},
          {"best_validation_accuracy", c.best_validation_accuracy()},
          {"violations", violations},
          {"peak_memory_bytes", c.peak_memory_bytes()},
          {"duration_seconds", c.duration_seconds()},
          {"train_images_per_second", c.train_images_per_second()},
          {"attempts", c.attempts()},
          {"worker", c.worker()},
          {"error", c.error()},
          {"epochs", Epochs(c.epochs())}};
}

json ResultJson(const v1::SearchResult& r) {
  return {{"found", r.found()},
          {"k", r.k()},
          {"c", r.c()},
          {"validation_accuracy", r.validation_accuracy()},
          {"stop_reason", r.stop_reason()},
          {"macc", r.macc()},
          {"flash_bytes", r.flash_bytes()},
          {"ram_bytes", r.ram_bytes()}};
}

json FinalTrainingJson(const v1::Job& job) {
  if (!job.has_final_training()) return nullptr;
  const v1::FinalTraining& f = job.final_training();
  json ft = {{"state", CandidateStateName(f.state())},
             {"best_validation_accuracy", f.best_validation_accuracy()},
             {"quantized_validation_accuracy", f.quantized_validation_accuracy()},
             {"flash_bytes", f.flash_bytes()},
             {"ram_bytes", f.ram_bytes()},
             {"worker", f.worker()},
             {"duration_seconds", f.duration_seconds()},
             {"error", f.error()},
             {"epochs", Epochs(f.epochs())}};
  if (f.has_test_accuracy()) {
    ft["float_test_accuracy"] = f.float_test_accuracy();
    ft["quantized_test_accuracy"] = f.quantized_test_accuracy();
  }
  return ft;
}

// Geometry of the SVG figure: one square cell per (k, c), k grows to the right, c upwards.
struct SvgGrid {
  int k_min = 1, k_max = 4, c_max = 2;
  static constexpr int cell = 64, left = 70, top = 70, bottom = 90;
  int cols() const { return k_max - k_min + 1; }
  int rows() const { return c_max + 1; }
  int width() const { return std::max(left + cols() * cell + 30, 600); }
  int height() const { return top + rows() * cell + bottom; }
  // Cell centres.
  int cx(int k) const { return left + (k - k_min) * cell + cell / 2; }
  int cy(int c) const { return top + (c_max - c) * cell + cell / 2; }
};

SvgGrid GridFor(const std::vector<const v1::Candidate*>& path) {
  SvgGrid g;
  if (!path.empty()) {
    g.k_min = g.k_max = path[0]->k();
    g.c_max = 0;
  }
  for (const v1::Candidate* c : path) {
    g.k_min = std::min(g.k_min, c->k());
    g.k_max = std::max(g.k_max, c->k());
    g.c_max = std::max(g.c_max, c->c());
  }
  g.k_min = std::max(1, g.k_min - 1);
  g.k_max += 1;
  g.c_max += 1;
  return g;
}

void AppendSvgHeader(const v1::Job& job, const SvgGrid& g, std::string* s) {
  const int width = g.width(), height = g.height(), left = SvgGrid::left;
  *s = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
      "font-family=\"sans-serif\">\n",
      width, height, width, height);
  absl::StrAppend(
      s,
      "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" "
      "markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" "
      "fill=\"#1f4e79\"/></marker></defs>\n");
  absl::StrAppend(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
  const std::string title = job.spec().name().empty() ? job.id() : job.spec().name();
  absl::StrAppend(s, "<text x=\"", left,
                  "\" y=\"26\" font-size=\"16\" font-weight=\"bold\">NanoNAS search path: ",
                  Escape(title), "</text>\n");
  const v1::Constraints& lim = job.spec().constraints();
  absl::StrAppend(
      s, "<text x=\"", left, "\" y=\"46\" font-size=\"11\" fill=\"#444\">",
      Escape(absl::StrCat("limits: RAM ", Limit(lim.ram_bytes(), " B"), ", Flash ",
                          Limit(lim.flash_bytes(), " B"), ", MACC ", Limit(lim.macc(), ""),
                          lim.target().empty() ? "" : " (" + lim.target() + ")")),
      "</text>\n");
}

void AppendGridAndAxes(const SvgGrid& g, std::string* s) {
  const int cell = SvgGrid::cell, left = SvgGrid::left, top = SvgGrid::top;
  const int rows = g.rows(), cols = g.cols();
  for (int k = g.k_min; k <= g.k_max; ++k) {
    for (int c = 0; c <= g.c_max; ++c) {
      absl::StrAppend(s, "<rect x=\"", g.cx(k) - cell / 2, "\" y=\"", g.cy(c) - cell / 2,
                      "\" width=\"", cell, "\" height=\"", cell,
                      "\" fill=\"none\" stroke=\"#ddd\"/>\n");
    }
    absl::StrAppend(s, "<text x=\"", g.cx(k), "\" y=\"", top + rows * cell + 18,
                    "\" font-size=\"12\" text-anchor=\"middle\">", k, "</text>\n");
  }
  for (int c = 0; c <= g.c_max; ++c) {
    absl::StrAppend(s, "<text x=\"", left - 10, "\" y=\"", g.cy(c) + 4,
                    "\" font-size=\"12\" text-anchor=\"end\">", c, "</text>\n");
  }
  absl::StrAppend(
      s, "<text x=\"", left + cols * cell / 2, "\" y=\"", top + rows * cell + 38,
      "\" font-size=\"13\" text-anchor=\"middle\">k (kernels of the first layer)</text>\n");
  absl::StrAppend(s, "<text x=\"18\" y=\"", top + rows * cell / 2,
                  "\" font-size=\"13\" text-anchor=\"middle\" transform=\"rotate(-90 18 ",
                  top + rows * cell / 2, ")\">c (cells)</text>\n");
}

// Arrows along the search order (drawn first so that the markers sit on top).
void AppendSearchArrows(const std::vector<const v1::Candidate*>& path, const SvgGrid& g,
                        std::string* s) {
  for (size_t i = 1; i < path.size(); ++i) {
    const double x0 = g.cx(path[i - 1]->k()), y0 = g.cy(path[i - 1]->c());
    const double x1 = g.cx(path[i]->k()), y1 = g.cy(path[i]->c());
    const double len = std::hypot(x1 - x0, y1 - y0);
    if (len < 1) continue;
    const double r = 24;  // stop at the node's edge
    const double ux = (x1 - x0) / len, uy = (y1 - y0) / len;
    absl::StrAppend(
        s,
        absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#1f4e79\" "
                        "stroke-width=\"2\" marker-end=\"url(#arrow)\"/>\n",
                        x0 + ux * r, y0 + uy * r, x1 - ux * r, y1 - uy * r));
  }
}

// How one candidate's node looks: colours, the main label and an optional sub-label.
struct NodeStyle {
  std::string fill = "#dbe9f6", stroke = "#1f4e79", label, sub;
};

NodeStyle StyleFor(const v1::Candidate& c, bool winner) {
  NodeStyle n;
  switch (c.state()) {
    case v1::CANDIDATE_STATE_DONE:
      n.label = absl::StrFormat("%.1f%%", 100.0 * c.best_validation_accuracy());
      break;
    case v1::CANDIDATE_STATE_INFEASIBLE:
    case v1::CANDIDATE_STATE_HOST_INFEASIBLE:
      n.fill = "#f8d7da";
      n.stroke = "#b02a37";
      n.label = "\xE2\x9C\x97";  // ✗
      n.sub = c.violations_size() > 0
                  ? ShortResource(c.violations(0).resource())
                  : (c.state() == v1::CANDIDATE_STATE_HOST_INFEASIBLE ? "host" : "limit");
      break;
    case v1::CANDIDATE_STATE_FAILED:
      n.fill = "#e2e3e5";
      n.stroke = "#6c757d";
      n.label = "failed";
      break;
    default:
      n.fill = "#ffffff";
      n.stroke = "#6c757d";
      n.label = CandidateStateName(c.state());
      std::transform(n.label.begin(), n.label.end(), n.label.begin(), ::tolower);
  }
  if (winner) {
    n.fill = "#fff3b0";
    n.stroke = "#d4a017";
  }
  return n;
}

void AppendCandidateNode(const v1::Candidate& c, const v1::SearchResult& result, const SvgGrid& g,
                         std::string* s) {
  const int x = g.cx(c.k()), y = g.cy(c.c());
  const bool winner = result.found() && result.k() == c.k() && result.c() == c.c();
  const NodeStyle n = StyleFor(c, winner);
  absl::StrAppend(s, "<g class=\"candidate\" data-k=\"", c.k(), "\" data-c=\"", c.c(),
                  "\" data-state=\"", CandidateStateName(c.state()), "\"",
                  winner ? " data-winner=\"true\"" : "", ">");
  absl::StrAppend(s, "<circle cx=\"", x, "\" cy=\"", y, "\" r=\"24\" fill=\"", n.fill,
                  "\" stroke=\"", n.stroke, "\" stroke-width=\"", winner ? 4 : 2, "\"/>");
  absl::StrAppend(s, "<text x=\"", x, "\" y=\"", n.sub.empty() ? y + 4 : y,
                  "\" font-size=\"11\" text-anchor=\"middle\">", Escape(n.label), "</text>");
  if (!n.sub.empty()) {
    absl::StrAppend(s, "<text x=\"", x, "\" y=\"", y + 12,
                    "\" font-size=\"9\" text-anchor=\"middle\" fill=\"#b02a37\">", Escape(n.sub),
                    "</text>");
  }
  absl::StrAppend(s, "<text x=\"", x + 20, "\" y=\"", y - 18, "\" font-size=\"9\" fill=\"#666\">#",
                  c.sequence(), "</text></g>\n");
}

void AppendLegend(const v1::SearchResult& result, const SvgGrid& g, std::string* s) {
  const int left = SvgGrid::left;
  const int ly = SvgGrid::top + g.rows() * SvgGrid::cell + 62;
  absl::StrAppend(s, "<circle cx=\"", left + 8, "\" cy=\"", ly,
                  "\" r=\"7\" fill=\"#dbe9f6\" stroke=\"#1f4e79\"/>", "<text x=\"", left + 20,
                  "\" y=\"", ly + 4, "\" font-size=\"11\">validation accuracy</text>\n");
  absl::StrAppend(s, "<circle cx=\"", left + 158, "\" cy=\"", ly,
                  "\" r=\"7\" fill=\"#f8d7da\" stroke=\"#b02a37\"/>", "<text x=\"", left + 170,
                  "\" y=\"", ly + 4, "\" font-size=\"11\">infeasible (limit broken)</text>\n");
  absl::StrAppend(
      s, "<circle cx=\"", left + 328, "\" cy=\"", ly,
      "\" r=\"7\" fill=\"#fff3b0\" stroke=\"#d4a017\" stroke-width=\"3\"/>", "<text x=\"",
      left + 340, "\" y=\"", ly + 4, "\" font-size=\"11\">",
      Escape(result.found() ? absl::StrFormat("result (k=%d, c=%d)", result.k(), result.c())
                            : std::string("no candidate fitted")),
      "</text>\n");
}

}  // namespace

std::string SearchReportJson(const v1::Job& job) {
  json j;
  j["job"] = JobJson(job);
  j["spec"] = SpecJson(job.spec());
  json path = json::array();
  for (const v1::Candidate* c : PathInOrder(job)) path.push_back(CandidateJson(*c));
  j["path"] = path;
  j["result"] = ResultJson(job.result());
  j["final_training"] = FinalTrainingJson(job);
  json artifacts = json::array();
  for (const v1::Artifact& a : job.artifacts()) {
    artifacts.push_back(
        {{"name", a.name()}, {"size_bytes", a.size_bytes()}, {"sha256", a.sha256()}});
  }
  j["artifacts"] = artifacts;
  return j.dump(2) + "\n";
}

std::string SearchPathSvg(const v1::Job& job) {
  const std::vector<const v1::Candidate*> path = PathInOrder(job);
  const SvgGrid grid = GridFor(path);
  std::string s;
  AppendSvgHeader(job, grid, &s);
  AppendGridAndAxes(grid, &s);
  AppendSearchArrows(path, grid, &s);
  for (const v1::Candidate* c : path) AppendCandidateNode(*c, job.result(), grid, &s);
  AppendLegend(job.result(), grid, &s);
  absl::StrAppend(&s, "</svg>\n");
  return s;
}

}  // namespace nanonas
