#include "replboot/api/query.h"

#include <charconv>
#include <cmath>

namespace replboot::api {

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    int high = s[i] == '%' && i + 2 < s.size() ? HexValue(s[i + 1]) : -1;
    int low = high >= 0 ? HexValue(s[i + 2]) : -1;
    if (low >= 0) {
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

Query ParseQuery(std::string_view query) {
  Query out;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    out[PercentDecode(pair.substr(0, eq))] =
        eq == std::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

Result<double> ParseNumberParam(std::string_view name, const std::string& text, double min,
                                double max) {
  double v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  // from_chars also reads "inf" and "nan", and gives ERANGE (v untouched) for "1e999".
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(v))
    return Error(StatusCode::kInvalidArgument, "{} '{}' is not a finite number", name, text);
  if (!(v >= min && v <= max)) {
    return Error(StatusCode::kInvalidArgument, "{} '{}' is out of range [{}, {}]", name, text, min,
                 max);
  }
  return v == 0 ? 0.0 : v;  // -0 is 0
}

}  // namespace replboot::api
