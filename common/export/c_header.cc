#include "common/export/c_header.h"

#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace nanonas {

std::string CIdentifier(absl::string_view text) {
  std::string out;
  for (char ch : text) {
    const unsigned char u = static_cast<unsigned char>(ch);
    if (std::isalnum(u) && u < 128) {
      out.push_back(static_cast<char>(std::tolower(u)));
    } else if (!out.empty() && out.back() != '_') {
      out.push_back('_');
    }
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  if (out.empty()) return "model";
  if (std::isdigit(static_cast<unsigned char>(out[0]))) out = "m_" + out;
  return out;
}

std::string ModelArrayName(absl::string_view job_name, absl::string_view job_id) {
  const absl::string_view base = !job_name.empty() ? job_name : job_id;
  return absl::StrCat("nanonas_", base.empty() ? "" : CIdentifier(base) + "_", "model");
}

std::string CommentText(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const unsigned char u = static_cast<unsigned char>(ch);
    // Control characters (CR, VT, FF, NUL, ...) and a backslash (a line continuation at the end of
    // a // comment would swallow the next line) could change what the compiler sees.
    out.push_back(u < 0x20 || u == 0x7f || ch == '\\' ? '?' : ch);
  }
  return out;
}

std::string MakeCHeader(absl::string_view bytes, absl::string_view array_name,
                        absl::string_view comment) {
  const std::string name = CIdentifier(array_name);
  const std::string guard = absl::AsciiStrToUpper(name) + "_H_";
  std::string out;
  if (!comment.empty()) {
    for (absl::string_view line : absl::StrSplit(comment, '\n'))
      absl::StrAppend(&out, "// ", CommentText(line), "\n");
  }
  absl::StrAppend(&out, "// TensorFlow Lite model written by nanonas: ", bytes.size(),
                  " bytes, kept 16-byte aligned for TensorFlow Lite Micro.\n");
  absl::StrAppend(&out, "#ifndef ", guard, "\n#define ", guard, "\n\n");
  absl::StrAppend(&out, "#ifndef __cplusplus\n#include <stdalign.h>\n#endif\n\n");
  absl::StrAppend(&out, "alignas(16) const unsigned char ", name, "[] = {");
  static const char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i % 12 == 0) out += "\n   ";
    const unsigned char b = static_cast<unsigned char>(bytes[i]);
    out += " 0x";
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
    if (i + 1 < bytes.size()) out.push_back(',');
  }
  absl::StrAppend(&out, "\n};\nconst unsigned int ", name, "_len = ", bytes.size(),
                  ";\n\n#endif  // ", guard, "\n");
  return out;
}

std::string ModelHeaderText(absl::string_view tflite, const ModelDescription& model) {
  const std::string named = model.name.empty() ? "" : absl::StrCat(" (", model.name, ")");
  const std::string who = model.job_id.empty() ? absl::StrCat("nanonas", named)
                                               : absl::StrCat("nanonas job ", model.job_id, named);
  const std::string comment = absl::StrFormat(
      "%s: NanoNAS %s model k=%d c=%d, %d classes, input %dx%dx%d uint8\nfull-integer uint8 "
      "TFLite model, %d bytes of Flash, %d bytes of RAM (reference-tool method)",
      who, model.variant, model.k, model.c, model.classes, model.input.height, model.input.width,
      model.input.channels, tflite.size(), model.ram_bytes);
  return MakeCHeader(tflite, ModelArrayName(model.name, model.job_id), comment);
}

}  // namespace nanonas
