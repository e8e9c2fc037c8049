#include "server/search/search.h"

#include <map>
#include <random>
#include <set>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nanonas {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using KC = std::pair<int, int>;

// A scripted world: accuracies per (k, c), candidates the resource model rejects, and outcomes
// the workers report instead of an accuracy.
struct Script {
  std::map<KC, double> accuracy;
  std::map<KC, FeasibilityVerdict> verdicts;  // absent: fits
  std::map<KC, EvaluationOutcome> reported;   // absent: Done(accuracy[kc])
  std::map<KC, absl::Status> feasibility_errors;
  std::vector<KC> feasibility_calls;  // every call of the feasibility function
};

FeasibilityFunction FeasibilityOf(Script* script) {
  return [script](const CandidateSpec& spec) -> absl::StatusOr<FeasibilityVerdict> {
    KC kc{spec.k, spec.c};
    script->feasibility_calls.push_back(kc);
    auto err = script->feasibility_errors.find(kc);
    if (err != script->feasibility_errors.end()) return err->second;
    auto it = script->verdicts.find(kc);
    CandidateFigures figures{1000 * spec.k + spec.c, 0, 0};
    if (it == script->verdicts.end()) return FeasibilityVerdict::Fits(figures);
    return it->second;
  };
}

NanoNasSearch::Options Opts(InputShape in = {50, 50, 3}) {
  NanoNasSearch::Options o;
  o.input = in;
  o.classes = 10;
  return o;
}

// Reports the scripted outcome of the pending candidate. Returns false when nothing is pending.
bool Step(NanoNasSearch& search, Script& script) {
  std::optional<PendingCandidate> next = search.Next();
  if (!next) return false;
  KC kc{next->spec.k, next->spec.c};
  auto it = script.reported.find(kc);
  EvaluationOutcome outcome;
  if (it != script.reported.end()) {
    outcome = it->second;
  } else {
    auto acc = script.accuracy.find(kc);
    EXPECT_NE(acc, script.accuracy.end())
        << "search asked for unscripted k=" << kc.first << " c=" << kc.second;
    if (acc == script.accuracy.end()) return false;
    outcome = EvaluationOutcome::Done(acc->second);
  }
  EXPECT_TRUE(search.Report(kc.first, kc.second, outcome).ok());
  return true;
}

NanoNasSearch RunToEnd(const NanoNasSearch::Options& options, Script& script) {
  absl::StatusOr<NanoNasSearch> search = NanoNasSearch::Create(options, FeasibilityOf(&script));
  EXPECT_TRUE(search.ok()) << search.status();
  for (int i = 0; i < 1000 && Step(*search, script); ++i) {
  }
  EXPECT_TRUE(search->Done());
  return *std::move(search);
}

std::vector<KC> PathKC(const NanoNasSearch& search) {
  std::vector<KC> out;
  for (const PathEntry& e : search.Path()) out.emplace_back(e.k, e.c);
  return out;
}

void AddRow(Script& s, int k, std::vector<double> accs) {
  for (size_t c = 0; c < accs.size(); ++c) s.accuracy[{k, static_cast<int>(c)}] = accs[c];
}

// The example of the NanoNAS talk on a 50x50 input (cell limit 5): k=1 peaks at c=2; k=2
// improves up to the cell limit and beats k=1; ...; k=10's best row (c=4) is worse than k=9's
// (c=3), so the search returns (9, 3).
Script TalkExample() {
  Script s;
  AddRow(s, 1, {0.60, 0.65, 0.70, 0.68});
  AddRow(s, 2, {0.62, 0.66, 0.71, 0.73, 0.75, 0.76});
  AddRow(s, 3, {0.63, 0.70, 0.74, 0.78, 0.77});
  AddRow(s, 4, {0.64, 0.72, 0.76, 0.80, 0.79});
  AddRow(s, 5, {0.66, 0.75, 0.81, 0.80});
  AddRow(s, 6, {0.67, 0.76, 0.80, 0.82, 0.815});
  AddRow(s, 7, {0.68, 0.77, 0.80, 0.82, 0.83, 0.83});
  AddRow(s, 8, {0.69, 0.78, 0.81, 0.84, 0.83});
  AddRow(s, 9, {0.70, 0.79, 0.82, 0.85, 0.84});
  AddRow(s, 10, {0.70, 0.76, 0.80, 0.82, 0.84, 0.83});
  return s;
}

TEST(SearchTest, TalkExampleReturnsK9C3) {
  Script script = TalkExample();
  NanoNasSearch search = RunToEnd(Opts(), script);
  EXPECT_EQ(search.state(), NanoNasSearch::State::kFinished);
  SearchOutcome r = search.Result();
  ASSERT_TRUE(r.found);
  EXPECT_EQ(r.k, 9);
  EXPECT_EQ(r.c, 3);
  EXPECT_DOUBLE_EQ(r.accuracy, 0.85);
  EXPECT_THAT(r.stop_reason, HasSubstr("row k=10 peaked at c=4"));
  EXPECT_THAT(r.stop_reason, HasSubstr("k=9's best c=3"));
  // Rows walk c while strictly improving, plus the first non-improving c (or the cell limit).
  std::vector<KC> expected;
  const int last_c[] = {0, 3, 5, 4, 4, 3, 4, 5, 4, 4, 5};  // per k: the last c evaluated
  for (int k = 1; k <= 10; ++k)
    for (int c = 0; c <= last_c[k]; ++c) expected.emplace_back(k, c);
  EXPECT_EQ(PathKC(search), expected);
  EXPECT_EQ(r.sequence, 43);  // 4+6+5+5+4+5+6+5 = 40 entries before k=9, then c=0..3
  EXPECT_EQ(search.Path()[r.sequence].k, 9);
  // k=2 reached the cell limit 5 of a 50x50 input: c=6 was never asked for.
  EXPECT_EQ(search.max_cells(), 5);
  EXPECT_EQ(script.accuracy.count({2, 6}), 0u);
  EXPECT_FALSE(search.Next().has_value());
}

TEST(SearchTest, TieWithinARowEndsTheRow) {
  Script s;
  AddRow(s, 1, {0.50, 0.60, 0.60, 0.90});  // c=2 ties c=1: c=3 is never evaluated
  AddRow(s, 2, {0.55, 0.54});
  NanoNasSearch search = RunToEnd(Opts(), s);
  EXPECT_THAT(PathKC(search), ElementsAre(KC{1, 0}, KC{1, 1}, KC{1, 2}, KC{2, 0}, KC{2, 1}));
  EXPECT_EQ(search.Result().k, 1);
  EXPECT_EQ(search.Result().c, 1);
}

TEST(SearchTest, TieBetweenRowsStopsAndKeepsTheEarlierCandidate) {
  Script s;
  AddRow(s, 1, {0.50, 0.70, 0.65});
  AddRow(s, 2, {0.60, 0.70, 0.69});  // k=2's best ties k=1's: stop, result is k=1's
  NanoNasSearch search = RunToEnd(Opts(), s);
  ASSERT_TRUE(search.Result().found);
  EXPECT_EQ(search.Result().k, 1);
  EXPECT_EQ(search.Result().c, 1);
  EXPECT_EQ(search.Path().size(), 6u);
}

TEST(SearchTest, ScoresCompareRoundedToThreeDecimalsLikeTheReference) {
  Script s;
  AddRow(s, 1, {0.8501, 0.8504});  // both 0.850: a tie ends the row
  AddRow(s, 2, {0.1, 0.05});
  NanoNasSearch search = RunToEnd(Opts(), s);
  EXPECT_THAT(PathKC(search), ElementsAre(KC{1, 0}, KC{1, 1}, KC{2, 0}, KC{2, 1}));
  EXPECT_EQ(search.Result().c, 0);

  Script raw;
  AddRow(raw, 1, {0.8501, 0.8504, 0.80});
  AddRow(raw, 2, {0.1, 0.05});
  NanoNasSearch::Options o = Opts();
  o.score_decimals = -1;  // unrounded: 0.8504 improves on 0.8501
  NanoNasSearch unrounded = RunToEnd(o, raw);
  EXPECT_EQ(unrounded.Result().c, 1);
}

TEST(SearchTest, InfeasibleCandidateIsRecordedWithItsViolationAndEndsTheRow) {
  Script s;
  AddRow(s, 1, {0.50, 0.60, 0.70});
  AddRow(s, 2, {0.55, 0.65, 0.75});
  AddRow(s, 3, {0.40, 0.30});
  s.verdicts[{1, 2}] =
      FeasibilityVerdict::Infeasible({{"ram_bytes", 50000, 40960, 9040}}, {123, 456, 50000});
  s.verdicts[{2, 2}] =
      FeasibilityVerdict::Infeasible({{"flash_bytes", 140000, 131072, 8928}, {"macc", 3, 2, 1}});
  NanoNasSearch search = RunToEnd(Opts(), s);
  EXPECT_THAT(PathKC(search), ElementsAre(KC{1, 0}, KC{1, 1}, KC{1, 2}, KC{2, 0}, KC{2, 1},
                                          KC{2, 2}, KC{3, 0}, KC{3, 1}));
  const PathEntry& e = search.Path()[2];
  EXPECT_EQ(e.outcome, Outcome::kInfeasible);
  ASSERT_EQ(e.violations.size(), 1u);
  EXPECT_EQ(e.violations[0].resource, "ram_bytes");
  EXPECT_EQ(e.violations[0].excess, 9040);
  EXPECT_EQ(e.figures.ram_bytes, 50000);
  EXPECT_THAT(e.reason, HasSubstr("ram_bytes 50000 > limit 40960 by 9040"));
  EXPECT_EQ(search.Path()[5].violations.size(), 2u);
  // k=2's best (0.65) beats k=1's (0.60); k=3's (0.40) does not.
  EXPECT_EQ(search.Result().k, 2);
  EXPECT_EQ(search.Result().c, 1);
  // Each candidate's feasibility is decided exactly once, before it is handed out.
  EXPECT_EQ(s.feasibility_calls, PathKC(search));
}

TEST(SearchTest, InfeasibleCandidatesAreNeverHandedOutForTraining) {
  Script s;
  AddRow(s, 1, {0.5, 0.6});
  s.verdicts[{1, 2}] = FeasibilityVerdict::Infeasible({{"macc", 10, 5, 5}});
  s.verdicts[{2, 0}] = FeasibilityVerdict::Infeasible({{"macc", 10, 5, 5}});
  absl::StatusOr<NanoNasSearch> search = NanoNasSearch::Create(Opts(), FeasibilityOf(&s));
  ASSERT_TRUE(search.ok());
  std::vector<KC> handed_out;
  while (std::optional<PendingCandidate> next = search->Next()) {
    handed_out.emplace_back(next->spec.k, next->spec.c);
    EXPECT_EQ(next->spec.classes, 10);
    EXPECT_EQ(next->spec.input, (InputShape{50, 50, 3}));
    EXPECT_EQ(next->figures.macc, 1000 * next->spec.k + next->spec.c);
    ASSERT_TRUE(Step(*search, s));
  }
  EXPECT_THAT(handed_out, ElementsAre(KC{1, 0}, KC{1, 1}));
  EXPECT_THAT(search->Result().stop_reason, HasSubstr("row k=2 has no trained candidate"));
  EXPECT_EQ(search->Result().c, 1);
}

TEST(SearchTest, HostInfeasibleVerdictEndsTheRow) {
  Script s;
  AddRow(s, 1, {0.5, 0.6});
  AddRow(s, 2, {0.4, 0.3});
  s.verdicts[{1, 2}] =
      FeasibilityVerdict::HostInfeasible({{"host_memory_bytes", 9000000, 8000000, 1000000}});
  NanoNasSearch search = RunToEnd(Opts(), s);
  EXPECT_EQ(search.Path()[2].outcome, Outcome::kHostInfeasible);
  EXPECT_EQ(search.Path()[2].violations[0].resource, "host_memory_bytes");
  EXPECT_THAT(PathKC(search), ElementsAre(KC{1, 0}, KC{1, 1}, KC{1, 2}, KC{2, 0}, KC{2, 1}));
}

TEST(SearchTest, ReportedHostInfeasibleAndFailedEndTheirRows) {
  Script s;
  AddRow(s, 1, {0.5, 0.6, 0.99});
  AddRow(s, 2, {0.55, 0.7, 0.99});
  AddRow(s, 3, {0.1, 0.05});
  s.reported[{1, 2}] = EvaluationOutcome::HostInfeasible("peak RSS 9 GiB > budget 8 GiB");
  s.reported[{2, 2}] = EvaluationOutcome::Failed("worker lost 3 times");
  NanoNasSearch search = RunToEnd(Opts(), s);
  EXPECT_THAT(PathKC(search), ElementsAre(KC{1, 0}, KC{1, 1}, KC{1, 2}, KC{2, 0}, KC{2, 1},
                                          KC{2, 2}, KC{3, 0}, KC{3, 1}));
  EXPECT_EQ(search.Path()[2].outcome, Outcome::kHostInfeasible);
  EXPECT_EQ(search.Path()[2].reason, "peak RSS 9 GiB > budget 8 GiB");
  EXPECT_EQ(search.Path()[5].outcome, Outcome::kFailed);
  EXPECT_EQ(search.Path()[5].reason, "worker lost 3 times");
  EXPECT_EQ(search.Result().k, 2);
  EXPECT_EQ(search.Result().c, 1);
}

TEST(SearchTest, NothingFitsStopsWithoutResult) {
  Script s;
  s.verdicts[{1, 0}] = FeasibilityVerdict::Infeasible({{"ram_bytes", 5000, 4096, 904}});
  absl::StatusOr<NanoNasSearch> search = NanoNasSearch::Create(Opts(), FeasibilityOf(&s));
  ASSERT_TRUE(search.ok());
  EXPECT_TRUE(search->Done());
  EXPECT_EQ(search->state(), NanoNasSearch::State::kFinished);
  EXPECT_FALSE(search->Next().has_value());
  EXPECT_FALSE(search->Result().found);
  EXPECT_THAT(search->Result().stop_reason, HasSubstr("no candidate fits"));
  EXPECT_THAT(search->Result().stop_reason, HasSubstr("ram_bytes 5000 > limit 4096"));
  EXPECT_THAT(PathKC(*search), ElementsAre(KC{1, 0}));
  EXPECT_FALSE(search->BestSoFar().has_value());
}

TEST(SearchTest, FirstCandidateFailingAlsoMeansNoResult) {
  Script s;
  s.reported[{1, 0}] = EvaluationOutcome::Failed("crashed");
  NanoNasSearch search = RunToEnd(Opts(), s);
  EXPECT_FALSE(search.Result().found);
  EXPECT_THAT(search.Result().stop_reason, HasSubstr("no candidate fits"));
}

TEST(SearchTest, CellLimitEndsTheRowWithoutAskingBeyondIt) {
  Script s;  // 4x4: cells at 4 and 2, so MaxCells = 2; always improving
  AddRow(s, 1, {0.1, 0.2, 0.3});
  AddRow(s, 2, {0.2, 0.3, 0.4});
  AddRow(s, 3, {0.2, 0.3, 0.35});
  NanoNasSearch search = RunToEnd(Opts({4, 4, 1}), s);
  EXPECT_EQ(search.max_cells(), 2);
  EXPECT_THAT(PathKC(search), ElementsAre(KC{1, 0}, KC{1, 1}, KC{1, 2}, KC{2, 0}, KC{2, 1},
                                          KC{2, 2}, KC{3, 0}, KC{3, 1}, KC{3, 2}));
  EXPECT_EQ(search.Result().k, 2);
  EXPECT_EQ(search.Result().c, 2);

  Script one;  // 1x1: no cell at all, every row is c = 0 only
  AddRow(one, 1, {0.3});
  AddRow(one, 2, {0.4});
  AddRow(one, 3, {0.4});
  NanoNasSearch tiny = RunToEnd(Opts({1, 1, 3}), one);
  EXPECT_THAT(PathKC(tiny), ElementsAre(KC{1, 0}, KC{2, 0}, KC{3, 0}));
  EXPECT_EQ(tiny.Result().k, 2);
}

TEST(SearchTest, FeasibilityErrorIsRecordedAsFailed) {
  Script s;
  AddRow(s, 1, {0.5});
  s.feasibility_errors[{1, 1}] = absl::InvalidArgumentError("c beyond MaxCells");
  AddRow(s, 2, {0.4, 0.3});
  NanoNasSearch search = RunToEnd(Opts(), s);
  EXPECT_EQ(search.Path()[1].outcome, Outcome::kFailed);
  EXPECT_THAT(search.Path()[1].reason, HasSubstr("feasibility check failed: c beyond MaxCells"));
}

TEST(SearchTest, MaxKBoundsTheRows) {
  Script s = TalkExample();
  NanoNasSearch::Options o = Opts();
  o.max_k = 3;
  NanoNasSearch search = RunToEnd(o, s);
  EXPECT_EQ(search.Result().k, 3);
  EXPECT_EQ(search.Result().c, 3);
  EXPECT_THAT(search.Result().stop_reason, HasSubstr("max_k=3"));
  EXPECT_EQ(search.Path().back().k, 3);
}

TEST(SearchTest, NextIsStableUntilReported) {
  Script s = TalkExample();
  absl::StatusOr<NanoNasSearch> search = NanoNasSearch::Create(Opts(), FeasibilityOf(&s));
  ASSERT_TRUE(search.ok());
  auto a = search->Next();
  auto b = search->Next();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->spec.k, 1);
  EXPECT_EQ(a->spec.c, 0);
  EXPECT_EQ(b->sequence, 0);
  EXPECT_EQ(s.feasibility_calls.size(), 1u);
  EXPECT_EQ(search->state(), NanoNasSearch::State::kEvaluating);
}

TEST(SearchTest, ReportRejectsWrongCandidateBadAccuracyAndLateReports) {
  Script s;
  AddRow(s, 1, {0.5});
  s.verdicts[{1, 1}] = FeasibilityVerdict::Infeasible({{"macc", 2, 1, 1}});
  s.verdicts[{2, 0}] = FeasibilityVerdict::Infeasible({{"macc", 2, 1, 1}});
  absl::StatusOr<NanoNasSearch> search = NanoNasSearch::Create(Opts(), FeasibilityOf(&s));
  ASSERT_TRUE(search.ok());
  absl::Status st = search->Report(1, 1, EvaluationOutcome::Done(0.5));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("pending candidate is k=1 c=0"));
  EXPECT_EQ(search->Report(1, 0, EvaluationOutcome::Done(1.5)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(search->Report(1, 0, EvaluationOutcome::Done(std::nan(""))).code(),
            absl::StatusCode::kInvalidArgument);
  EvaluationOutcome infeasible;
  infeasible.outcome = Outcome::kInfeasible;
  EXPECT_EQ(search->Report(1, 0, infeasible).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(search->Path().empty());  // rejected reports change nothing
  ASSERT_TRUE(search->Report(1, 0, EvaluationOutcome::Done(0.5)).ok());
  EXPECT_TRUE(search->Done());
  EXPECT_EQ(search->Report(1, 0, EvaluationOutcome::Done(0.5)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(search->Result().k, 1);
}

TEST(SearchTest, ResourceVerdictsBecomeFeasibilityVerdicts) {
  const McuFigures figures{3000, 2000, 1000};
  ResourceVerdict fits;
  fits.figures = figures;
  const FeasibilityVerdict a = FeasibilityVerdict::FromResources(fits);
  EXPECT_EQ(a.fit, FeasibilityVerdict::Fit::kFits);
  EXPECT_EQ(a.figures, figures);
  EXPECT_TRUE(a.violations.empty());

  ResourceVerdict mcu = fits;
  mcu.fit = ResourceVerdict::Fit::kMcuInfeasible;
  mcu.violations = {{"ram_bytes", 1000, 999, 1}};
  const FeasibilityVerdict b = FeasibilityVerdict::FromResources(mcu);
  EXPECT_EQ(b.fit, FeasibilityVerdict::Fit::kInfeasible);
  EXPECT_EQ(b.violations, mcu.violations);
  EXPECT_EQ(b.figures, figures);

  ResourceVerdict host = fits;
  host.fit = ResourceVerdict::Fit::kHostInfeasible;
  host.violations = {{"host_memory_bytes", 60, 50, 10}};
  const FeasibilityVerdict c = FeasibilityVerdict::FromResources(host);
  EXPECT_EQ(c.fit, FeasibilityVerdict::Fit::kHostInfeasible);
  EXPECT_EQ(c.violations, host.violations);
  EXPECT_EQ(c.figures, figures);
}

TEST(SearchTest, CreateRejectsBadOptions) {
  Script s;
  EXPECT_EQ(NanoNasSearch::Create(Opts({0, 0, 3}), FeasibilityOf(&s)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NanoNasSearch::Create(Opts({8, 8, 2}), FeasibilityOf(&s)).status().code(),
            absl::StatusCode::kInvalidArgument);
  NanoNasSearch::Options one_class = Opts();
  one_class.classes = 1;
  absl::Status st = NanoNasSearch::Create(one_class, FeasibilityOf(&s)).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("at least 2 classes"));
  EXPECT_EQ(NanoNasSearch::Create(Opts(), nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SearchTest, CancelledEvaluationStopsTheSearchWithoutResult) {
  Script s = TalkExample();
  s.reported[{2, 1}] = EvaluationOutcome::Cancelled("user asked");
  NanoNasSearch search = RunToEnd(Opts(), s);
  EXPECT_EQ(search.state(), NanoNasSearch::State::kCancelled);
  EXPECT_FALSE(search.Result().found);
  EXPECT_THAT(search.Result().stop_reason, HasSubstr("cancelled while evaluating k=2 c=1"));
  EXPECT_EQ(search.Path().back().outcome, Outcome::kCancelled);
  ASSERT_TRUE(search.BestSoFar().has_value());
  EXPECT_EQ(search.BestSoFar()->k, 1);
  EXPECT_EQ(search.BestSoFar()->c, 2);
}

TEST(SearchTest, CancelStopsAtAnyTime) {
  Script s = TalkExample();
  absl::StatusOr<NanoNasSearch> search = NanoNasSearch::Create(Opts(), FeasibilityOf(&s));
  ASSERT_TRUE(search.ok());
  ASSERT_TRUE(Step(*search, s));
  ASSERT_TRUE(Step(*search, s));
  search->Cancel("job cancelled");
  EXPECT_TRUE(search->Done());
  EXPECT_FALSE(search->Next().has_value());
  EXPECT_EQ(search->Result().stop_reason, "job cancelled");
  EXPECT_EQ(search->BestSoFar()->c, 1);  // the row's best so far
  EXPECT_EQ(search->Report(1, 2, EvaluationOutcome::Done(0.7)).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(SearchTest, SpeculativeCandidatesAreTheTwoPossibleSuccessors) {
  Script s;
  AddRow(s, 1, {0.5});
  absl::StatusOr<NanoNasSearch> search = NanoNasSearch::Create(Opts({2, 2, 1}), FeasibilityOf(&s));
  ASSERT_TRUE(search.ok());  // 2x2: MaxCells = 1
  EXPECT_THAT(search->SpeculativeCandidates(), ElementsAre(KC{1, 1}, KC{2, 0}));
  ASSERT_TRUE(search->Report(1, 0, EvaluationOutcome::Done(0.5)).ok());
  EXPECT_THAT(search->SpeculativeCandidates(), ElementsAre(KC{2, 0}));  // c=1 is the limit
}

void ExpectSameMachine(const NanoNasSearch& a, const NanoNasSearch& b) {
  EXPECT_EQ(a.state(), b.state());
  EXPECT_EQ(a.Path(), b.Path());
  EXPECT_EQ(a.Done(), b.Done());
  auto na = a.Next(), nb = b.Next();
  ASSERT_EQ(na.has_value(), nb.has_value());
  if (na) {
    EXPECT_EQ(na->sequence, nb->sequence);
    EXPECT_EQ(na->spec.k, nb->spec.k);
    EXPECT_EQ(na->spec.c, nb->spec.c);
    EXPECT_EQ(na->figures, nb->figures);
  }
  SearchOutcome ra = a.Result(), rb = b.Result();
  EXPECT_EQ(ra.found, rb.found);
  EXPECT_EQ(ra.k, rb.k);
  EXPECT_EQ(ra.c, rb.c);
  EXPECT_EQ(ra.sequence, rb.sequence);
  EXPECT_EQ(ra.stop_reason, rb.stop_reason);
  EXPECT_EQ(a.BestSoFar().has_value(), b.BestSoFar().has_value());
  if (a.BestSoFar()) {
    EXPECT_EQ(*a.BestSoFar(), *b.BestSoFar());
  }
  EXPECT_EQ(a.SpeculativeCandidates(), b.SpeculativeCandidates());
}

// A script with infeasible, host-infeasible and failed candidates on the talk example.
Script MixedScript() {
  Script s = TalkExample();
  s.verdicts[{3, 4}] = FeasibilityVerdict::Infeasible({{"ram_bytes", 9, 8, 1}}, {1, 2, 9});
  s.reported[{5, 3}] = EvaluationOutcome::HostInfeasible("out of memory");
  s.reported[{7, 5}] = EvaluationOutcome::Failed("lost");
  return s;
}

TEST(SearchTest, RestoreFromEveryPrefixGivesTheIdenticalMachine) {
  Script full = MixedScript();
  NanoNasSearch reference = RunToEnd(Opts(), full);
  ASSERT_TRUE(reference.Result().found);
  const std::vector<PathEntry>& path = reference.Path();
  for (size_t n = 0; n <= path.size(); ++n) {
    SCOPED_TRACE(n);
    // The original machine after n path entries.
    Script live_script = MixedScript();
    absl::StatusOr<NanoNasSearch> live = NanoNasSearch::Create(Opts(), FeasibilityOf(&live_script));
    ASSERT_TRUE(live.ok());
    while (live->Path().size() < n && Step(*live, live_script)) {
    }
    if (live->Path().size() != n) continue;  // n falls inside a run of infeasible entries
    std::vector<PathEntry> prefix(path.begin(), path.begin() + n);
    Script restored_script = MixedScript();
    absl::StatusOr<NanoNasSearch> restored =
        NanoNasSearch::Restore(Opts(), FeasibilityOf(&restored_script), prefix);
    ASSERT_TRUE(restored.ok()) << restored.status();
    ExpectSameMachine(*live, *restored);
    // Recorded candidates are not checked again: at most the pending one is.
    EXPECT_LE(restored_script.feasibility_calls.size(), 1u);
    // Both go on identically to the same end.
    while (Step(*live, live_script) && Step(*restored, restored_script)) {
    }
    ExpectSameMachine(*live, *restored);
    ExpectSameMachine(reference, *restored);
  }
}

TEST(SearchTest, RestoreTrustsRecordedVerdictsOverTheFeasibilityFunction) {
  Script s = TalkExample();
  NanoNasSearch reference = RunToEnd(Opts(), s);
  // The resource model now says everything is infeasible; recorded results still stand.
  Script everything_infeasible = TalkExample();
  for (auto& [kc, acc] : everything_infeasible.accuracy) {
    everything_infeasible.verdicts[kc] = FeasibilityVerdict::Infeasible({{"macc", 1, 0, 1}});
  }
  absl::StatusOr<NanoNasSearch> restored =
      NanoNasSearch::Restore(Opts(), FeasibilityOf(&everything_infeasible), reference.Path());
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_TRUE(everything_infeasible.feasibility_calls.empty());
  EXPECT_EQ(restored->Result().k, 9);
  EXPECT_EQ(restored->Result().c, 3);
}

TEST(SearchTest, RestoreRejectsPathsTheSearchWouldNotWalk) {
  Script s = TalkExample();
  NanoNasSearch reference = RunToEnd(Opts(), s);
  std::vector<PathEntry> path = reference.Path();

  std::vector<PathEntry> wrong_c(path.begin(), path.begin() + 3);
  wrong_c[2].c = 3;
  absl::Status st = NanoNasSearch::Restore(Opts(), FeasibilityOf(&s), wrong_c).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("entry 2"));

  std::vector<PathEntry> too_long = path;
  PathEntry extra = path.back();
  extra.sequence = static_cast<int>(path.size());
  extra.k = 11;
  extra.c = 0;
  too_long.push_back(extra);
  st = NanoNasSearch::Restore(Opts(), FeasibilityOf(&s), too_long).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("after the search stopped"));

  std::vector<PathEntry> cancelled_mid(path.begin(), path.begin() + 3);
  cancelled_mid[1].outcome = Outcome::kCancelled;
  st = NanoNasSearch::Restore(Opts(), FeasibilityOf(&s), cancelled_mid).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);

  std::vector<PathEntry> bad_acc(path.begin(), path.begin() + 2);
  bad_acc[1].accuracy = -0.5;
  EXPECT_EQ(NanoNasSearch::Restore(Opts(), FeasibilityOf(&s), bad_acc).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SearchTest, RestoredCancelledPathIsCancelled) {
  Script s = TalkExample();
  s.reported[{1, 3}] = EvaluationOutcome::Cancelled();
  NanoNasSearch cancelled = RunToEnd(Opts(), s);
  absl::StatusOr<NanoNasSearch> restored =
      NanoNasSearch::Restore(Opts(), FeasibilityOf(&s), cancelled.Path());
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->state(), NanoNasSearch::State::kCancelled);
  ExpectSameMachine(cancelled, *restored);
}

// On random accuracy tables with random failures, the result is always the best DONE candidate
// of the whole path (earliest on ties), and the walk obeys the row rules.
TEST(SearchTest, ResultIsTheBestCandidateOfThePathOnRandomTables) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> acc_milli(300, 700);
  std::uniform_int_distribution<int> fate(0, 29);
  for (int trial = 0; trial < 300; ++trial) {
    SCOPED_TRACE(trial);
    Script s;
    for (int k = 1; k <= 60; ++k) {
      for (int c = 0; c <= 5; ++c) {
        // A gentle upward trend in k so that searches walk several rows.
        s.accuracy[{k, c}] = (acc_milli(rng) + 4 * k) / 1000.0;
        int f = fate(rng);
        if (f == 0) s.verdicts[{k, c}] = FeasibilityVerdict::Infeasible({{"ram_bytes", 2, 1, 1}});
        if (f == 1) s.reported[{k, c}] = EvaluationOutcome::Failed("boom");
        if (f == 2) s.reported[{k, c}] = EvaluationOutcome::HostInfeasible("oom");
      }
    }
    NanoNasSearch search = RunToEnd(Opts(), s);
    std::optional<PathEntry> best;
    for (const PathEntry& e : search.Path()) {
      if (e.outcome != Outcome::kDone) continue;
      if (!best || std::nearbyint(e.accuracy * 1000) > std::nearbyint(best->accuracy * 1000)) {
        best = e;
      }
    }
    SearchOutcome r = search.Result();
    ASSERT_EQ(r.found, best.has_value());
    if (best) {
      EXPECT_EQ(r.sequence, best->sequence);
    }
    // Walk rules: within a row c goes 0, 1, 2, ... without gaps, k goes up by one.
    const auto& path = search.Path();
    for (size_t i = 1; i < path.size(); ++i) {
      if (path[i].k == path[i - 1].k) {
        EXPECT_EQ(path[i].c, path[i - 1].c + 1);
      } else {
        EXPECT_EQ(path[i].k, path[i - 1].k + 1);
        EXPECT_EQ(path[i].c, 0);
      }
    }
    // Restoring the whole path reproduces the result.
    Script again = s;
    absl::StatusOr<NanoNasSearch> restored =
        NanoNasSearch::Restore(Opts(), FeasibilityOf(&again), search.Path());
    ASSERT_TRUE(restored.ok());
    ExpectSameMachine(search, *restored);
  }
}

}  // namespace
}  // namespace nanonas
