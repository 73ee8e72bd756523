// The two text helpers the metadata and GTID parsers share (internal to replication/).
#ifndef REPLBOOT_REPLICATION_SRC_TEXT_H_
#define REPLBOOT_REPLICATION_SRC_TEXT_H_

#include <charconv>
#include <string_view>
#include <system_error>
#include <vector>

namespace replboot::replication::text {

// The whole of `s` as an unsigned decimal of T: digits only (no sign, space or base prefix),
// at most 20 of them, and no overflow.
template <typename T>
bool ParseUnsigned(std::string_view s, T* out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// Every field between `sep`s, empty ones included ("a,,b" → a, "", b; "" → "").
inline std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t at = s.find(sep, start);
    if (at == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, at - start));
    start = at + 1;
  }
}

}  // namespace replboot::replication::text

#endif  // REPLBOOT_REPLICATION_SRC_TEXT_H_
