// Shared by the kernel tests (kernels_*_test.cc): the tolerances against the naive
// double-precision references (forward) and central finite differences of them (backward).
// Forward |fast - ref| <= 1e-4 (1 + |ref|) (float vs double); backward
// |analytic - numeric| <= 1e-3 |numeric| + 1e-4 (finite differences with eps 1e-5 in double).
#ifndef NANONAS_TESTS_ENGINE_KERNELS_TEST_UTIL_H_
#define NANONAS_TESTS_ENGINE_KERNELS_TEST_UTIL_H_

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace nanonas::engine::testing {

inline void ExpectForwardNear(const std::vector<float>& fast, const std::vector<double>& ref) {
  ASSERT_EQ(fast.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    ASSERT_NEAR(fast[i], ref[i], 1e-4 * (1 + std::abs(ref[i]))) << "at " << i;
  }
}

inline void ExpectGradNear(double analytic, double numeric, const char* what, size_t i) {
  EXPECT_NEAR(analytic, numeric, 1e-3 * std::abs(numeric) + 1e-4) << what << " at " << i;
}

}  // namespace nanonas::engine::testing

#endif  // NANONAS_TESTS_ENGINE_KERNELS_TEST_UTIL_H_
