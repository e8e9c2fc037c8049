// The search report of a job (nanonas::v1::Job): JSON with the whole search path (every candidate
// with k, c, state and figures, in search order), the result and the final training's figures;
// and an SVG picture of the path like the NanoNAS talk's: the (k, c) grid, each evaluated
// candidate's validation accuracy, infeasible candidates crossed out with the limit they broke,
// arrows following the search, the winner highlighted.
#ifndef NANONAS_COMMON_EXPORT_REPORT_H_
#define NANONAS_COMMON_EXPORT_REPORT_H_

#include <string>

#include "nanonas/v1/nanonas.pb.h"

namespace nanonas {

// Pretty-printed JSON (2-space indent). Keys: "job" (id, name, state, times, classes), "spec",
// "path" (candidates sorted by sequence), "result", "final_training", "artifacts".
std::string SearchReportJson(const nanonas::v1::Job& job);

// A self-contained SVG document (no scripts, no external references).
std::string SearchPathSvg(const nanonas::v1::Job& job);

}  // namespace nanonas

#endif  // NANONAS_COMMON_EXPORT_REPORT_H_
