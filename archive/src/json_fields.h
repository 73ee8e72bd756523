// The typed fields of one JSON document of the store, read strictly (manifests, checks,
// history records, segment metadata): every byte a store hands back is hostile.
#ifndef REPLBOOT_ARCHIVE_JSON_FIELDS_H_
#define REPLBOOT_ARCHIVE_JSON_FIELDS_H_

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace replboot::archive::internal {

// 9999-12-31T23:59:59.999Z: later times are not dates anyone meant.
inline constexpr int64_t kMaxJsonTimeMs = 253'402'300'799'999;

// The typed fields of one JSON object, read strictly: the first problem is kept (with the
// name of its field) and later reads are no-ops, so a parser reads every field in a row and
// checks once at the end.
class FieldReader {
 public:
  FieldReader(const nlohmann::json& object, std::string where) : object_(object), where_(std::move(where)) {}

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  void Fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
  }

  // Every member must be one of `names`.
  void OnlyFields(std::initializer_list<std::string_view> names) {
    if (!ok()) return;
    for (const auto& [name, value] : object_.items()) {
      bool known = false;
      for (std::string_view n : names) known = known || n == name;
      if (!known) return Fail(fmt::format("{}: unknown field \"{}\"", where_, Printable(name)));
    }
  }

  std::string String(const char* name, size_t max_chars, bool allow_newline = false,
                     bool allow_empty = true) {
    const nlohmann::json* value = Find(name);
    if (value == nullptr) return {};
    if (!value->is_string()) return Wrong(name, "a string"), std::string();
    const auto& text = value->get_ref<const std::string&>();
    if (text.size() > max_chars) {
      Fail(fmt::format("{}: \"{}\" is {} characters long, at most {} allowed", where_, name,
                       text.size(), max_chars));
      return {};
    }
    if (!allow_empty && text.empty()) {
      Fail(fmt::format("{}: \"{}\" is empty", where_, name));
      return {};
    }
    for (char c : text) {
      bool printable = c >= 0x20 && c <= 0x7e;
      if (!printable && !(allow_newline && c == '\n')) {
        Fail(fmt::format("{}: \"{}\" holds a byte that is not printable ASCII", where_, name));
        return {};
      }
    }
    return text;
  }

  uint64_t Unsigned(const char* name, uint64_t min, uint64_t max) {
    const nlohmann::json* value = Find(name);
    if (value == nullptr) return 0;
    if (!value->is_number_unsigned()) return Wrong(name, "a non-negative integer"), 0;
    uint64_t v = value->get<uint64_t>();
    if (v < min || v > max) {
      Fail(fmt::format("{}: \"{}\" is {}, outside {}..{}", where_, name, v, min, max));
      return 0;
    }
    return v;
  }

  int64_t Time(const char* name, int64_t min) {
    return static_cast<int64_t>(Unsigned(name, static_cast<uint64_t>(min), kMaxJsonTimeMs));
  }

  double Seconds(const char* name) {
    const nlohmann::json* value = Find(name);
    if (value == nullptr) return 0;
    if (!value->is_number()) return Wrong(name, "a number"), 0;
    double v = value->get<double>();
    // A duration: finite, not negative, under a year.
    if (!std::isfinite(v) || v < 0 || v > 366.0 * 86400) {
      Fail(fmt::format("{}: \"{}\" is {}, not a duration in seconds", where_, name, v));
      return 0;
    }
    return v;
  }

  const nlohmann::json* Array(const char* name) {
    const nlohmann::json* value = Find(name);
    if (value != nullptr && !value->is_array()) return Wrong(name, "an array"), nullptr;
    return value;
  }

 private:
  const nlohmann::json* Find(const char* name) {
    if (!ok()) return nullptr;
    auto it = object_.find(name);
    if (it == object_.end()) {
      Fail(fmt::format("{}: field \"{}\" is missing", where_, name));
      return nullptr;
    }
    return &*it;
  }
  void Wrong(const char* name, const char* type) {
    Fail(fmt::format("{}: \"{}\" is not {}", where_, name, type));
  }
  static std::string Printable(std::string_view text) {
    std::string out;
    for (char c : text.substr(0, 64)) out.push_back(c >= 0x20 && c <= 0x7e ? c : '?');
    return out;
  }

  const nlohmann::json& object_;
  std::string where_;
  std::string error_;
};

}  // namespace replboot::archive::internal

#endif  // REPLBOOT_ARCHIVE_JSON_FIELDS_H_
