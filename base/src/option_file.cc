#include "replboot/base/option_file.h"

#include <fmt/format.h>

#include <cctype>

namespace replboot::option_file {

namespace {

// Bytes the parser passes through unchanged outside quotes, wherever they stand.
bool IsPlain(std::string_view value) {
  if (value.empty()) return false;
  for (char c : value) {
    if (!std::isalnum(static_cast<unsigned char>(c)) &&
        std::string_view("_.,/:+-@").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

}  // namespace

Result<std::string> QuoteValue(std::string_view value) {
  if (IsPlain(value)) return std::string(value);
  std::string out;
  out.reserve(value.size() + 2);
  out.push_back('"');
  for (char c : value) {
    switch (c) {
      case '\0':
        return Error(StatusCode::kInvalidArgument, "contains a NUL byte");
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      default:
        // Other bytes (other control characters, UTF-8) pass through the parser unchanged
        // between the quotes.
        out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

Result<std::string> Line(std::string_view name, std::string_view value) {
  auto quoted = QuoteValue(value);
  if (!quoted) {
    return Error(StatusCode::kInvalidArgument, "option file value of {} {}", name,
                 quoted.error().message());
  }
  std::string line = fmt::format("{}={}", name, *quoted);
  if (line.size() > kMaxLineBytes) {
    return Error(StatusCode::kInvalidArgument,
                 "option file value of {} is too long ({} bytes quoted, at most {} per line)", name,
                 line.size(), kMaxLineBytes);
  }
  line.push_back('\n');
  return line;
}

}  // namespace replboot::option_file
