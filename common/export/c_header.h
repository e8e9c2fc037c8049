// The exported model as a C/C++ header for firmware: a 16-byte aligned const byte array (TFLite
// Micro reads the flatbuffer in place) plus its length.
//
//   alignas(16) const unsigned char nanonas_vww_model[] = {0x1c, 0x00, ...};
//   const unsigned int nanonas_vww_model_len = 10920;
#ifndef NANONAS_COMMON_EXPORT_C_HEADER_H_
#define NANONAS_COMMON_EXPORT_C_HEADER_H_

#include <string>

#include "absl/strings/string_view.h"

namespace nanonas {

// A valid C identifier from free text: lower-case letters, digits and '_' (other runs become one
// '_'), never starting with a digit, never empty ("model" for text without letters or digits).
std::string CIdentifier(absl::string_view text);

// "nanonas_<job name or id>_model" as a C identifier.
std::string ModelArrayName(absl::string_view job_name, absl::string_view job_id);

// The header text: an include guard derived from array_name, <stdalign.h> for C, the aligned
// array (12 bytes a line) and `const unsigned int <array_name>_len`. `comment` lines go on top.
std::string MakeCHeader(absl::string_view model_bytes, absl::string_view array_name,
                        absl::string_view comment = "");

}  // namespace nanonas

#endif  // NANONAS_COMMON_EXPORT_C_HEADER_H_
