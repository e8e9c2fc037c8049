// Whether a candidate of a job can run: first the microcontroller's limits (RAM, Flash, MACC from
// the resource model), then the host memory its training needs. The search calls the function
// MakeFeasibility returns before it hands out a candidate; the dispatcher calls it before
// evaluating one ahead of time. Pure given its models; thread-safe when the models are.
#ifndef NANONAS_SERVER_COORDINATOR_FEASIBILITY_H_
#define NANONAS_SERVER_COORDINATOR_FEASIBILITY_H_

#include <vector>

#include "nanonas/v1/nanonas.pb.h"
#include "server/coordinator/interfaces.h"
#include "server/search/search.h"

namespace nanonas::coordinator {

// The MCU limits a candidate breaks (empty when it fits; a limit of 0 is no limit).
std::vector<nanonas::v1::Violation> FindViolations(const nanonas::v1::Constraints& limits,
                                                   const McuFigures& figures);

// The search's feasibility function for `job`: MCU limits, then (when the spec has a host memory
// limit and `host` is set) the host memory estimate for the job's dataset and settings.
FeasibilityFunction MakeFeasibility(const nanonas::v1::Job& job, ResourceModel resources,
                                    HostMemoryModel host);

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_FEASIBILITY_H_
