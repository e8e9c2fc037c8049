// The exported model as a C/C++ header for firmware: a 16-byte aligned const byte array (TFLite
// Micro reads the flatbuffer in place) plus its length. Pure functions; thread-safe.
//
//   alignas(16) const unsigned char nanonas_vww_model[] = {0x1c, 0x00, ...};
//   const unsigned int nanonas_vww_model_len = 10920;
//
// model.h of a job or of nanonas-eval is ModelHeaderText(tflite, description): the one place its
// text (array name and descriptive comment) is decided.
#ifndef NANONAS_COMMON_EXPORT_C_HEADER_H_
#define NANONAS_COMMON_EXPORT_C_HEADER_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "common/arch/architecture.h"

namespace nanonas {

// A valid C identifier from free text: lower-case letters, digits and '_' (other runs become one
// '_'), never starting with a digit, never empty ("model" for text without letters or digits).
std::string CIdentifier(absl::string_view text);

// "nanonas_<job name or id>_model" as a C identifier.
std::string ModelArrayName(absl::string_view job_name, absl::string_view job_id);

// Free text made safe for one // comment line: control characters (CR, VT, FF, NUL, ...), DEL
// and backslashes (a trailing one continues the comment onto the next line) become '?'.
std::string CommentText(absl::string_view text);

// The header text: an include guard derived from array_name, <stdalign.h> for C, the aligned
// array (12 bytes a line) and `const unsigned int <array_name>_len`. `comment` lines ('\n'
// separated, each through CommentText) go on top: nothing in them reaches the preprocessor.
std::string MakeCHeader(absl::string_view model_bytes, absl::string_view array_name,
                        absl::string_view comment = "");

// What model.h says about the model it holds.
struct ModelDescription {
  std::string job_id;   // the job's id; "" outside a job (nanonas-eval)
  std::string name;     // the job's name ("" = none); with job_id it names the C array
  std::string variant;  // the search-space variant as the job spec spells it ("2023", "2024")
  int k = 0;
  int c = 0;
  int classes = 0;
  InputShape input;
  int64_t ram_bytes = 0;  // the resource model's RAM (reference-tool method)
};

// The model.h text for the .tflite bytes: MakeCHeader(tflite, ModelArrayName(name, job_id),
// comment), the comment naming the job (when job_id is set), the model (variant, k, c, classes,
// input), its Flash (the file's size) and RAM. For a job this is byte for byte the coordinator's
// model.h artifact.
std::string ModelHeaderText(absl::string_view tflite, const ModelDescription& model);

}  // namespace nanonas

#endif  // NANONAS_COMMON_EXPORT_C_HEADER_H_
