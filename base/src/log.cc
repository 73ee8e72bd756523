#include "replboot/base/log.h"

#include <fmt/chrono.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>

namespace replboot::log {
namespace {

std::mutex g_mutex;
spdlog::level::level_enum g_level = spdlog::level::info;

std::unique_ptr<spdlog::formatter> LogfmtFormatter() {
  return std::make_unique<spdlog::pattern_formatter>(
      "%Y-%m-%dT%H:%M:%S.%eZ level=%l component=%n %v", spdlog::pattern_time_type::utc);
}

// One JSON object per line: time, level and component, then the message's logfmt fields.
class JsonFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using namespace std::chrono;
    auto since_epoch = msg.time.time_since_epoch();
    auto millis = duration_cast<milliseconds>(since_epoch).count() % 1000;
    std::time_t seconds = duration_cast<std::chrono::seconds>(since_epoch).count();
    nlohmann::ordered_json line;
    line["time"] = fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", fmt::gmtime(seconds), millis);
    auto level = spdlog::level::to_string_view(msg.level);
    line["level"] = std::string(level.data(), level.size());
    line["component"] = std::string(msg.logger_name.data(), msg.logger_name.size());
    for (auto& [key, value] :
         ParseLogfmt(std::string_view(msg.payload.data(), msg.payload.size()))) {
      // The three above are the line's own: a message field of the same name does not replace them.
      if (!line.contains(key)) line[key] = std::move(value);
    }
    // Bytes that are not UTF-8 (a path, a tool's output) become U+FFFD instead of an exception.
    std::string text = line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    text += '\n';
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

spdlog::sink_ptr StdoutSink() {
  // One sink shared by every component so lines never interleave mid-line.
  static spdlog::sink_ptr sink = [] {
    auto s = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    s->set_formatter(LogfmtFormatter());
    return s;
  }();
  return sink;
}

}  // namespace

bool SetLevel(std::string_view level) {
  auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") return false;
  std::lock_guard lock(g_mutex);
  g_level = parsed;
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { l->set_level(parsed); });
  return true;
}

bool SetFormat(std::string_view format) {
  if (format == "logfmt") {
    StdoutSink()->set_formatter(LogfmtFormatter());
  } else if (format == "json") {
    StdoutSink()->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    return false;
  }
  return true;
}

std::vector<std::pair<std::string, std::string>> ParseLogfmt(std::string_view message) {
  std::vector<std::pair<std::string, std::string>> fields;
  std::string words;  // what is not key=value
  size_t i = 0;
  auto at_space = [&] { return message[i] == ' '; };
  while (i < message.size()) {
    if (at_space()) {
      ++i;
      continue;
    }
    size_t start = i;
    while (i < message.size() && !at_space() && message[i] != '=') ++i;
    if (i < message.size() && message[i] == '=' && i > start) {
      std::string key(message.substr(start, i - start));
      std::string value;
      ++i;
      if (i < message.size() && message[i] == '"') {
        // DoubleQuoted(): \" and \\ escaped, a newline as \n; ends at the unescaped quote.
        for (++i; i < message.size() && message[i] != '"'; ++i) {
          if (message[i] == '\\' && i + 1 < message.size()) {
            ++i;
            value += message[i] == 'n' ? '\n' : message[i];
          } else {
            value += message[i];
          }
        }
        if (i < message.size()) ++i;  // the closing quote
      } else {
        size_t begin = i;
        while (i < message.size() && !at_space()) ++i;
        value = message.substr(begin, i - begin);
      }
      fields.emplace_back(std::move(key), std::move(value));
    } else {
      while (i < message.size() && !at_space()) ++i;
      if (!words.empty()) words += ' ';
      words += message.substr(start, i - start);
    }
  }
  if (!words.empty()) fields.emplace_back("msg", std::move(words));
  return fields;
}

std::shared_ptr<spdlog::logger> Get(const std::string& component) {
  std::lock_guard lock(g_mutex);
  if (auto existing = spdlog::get(component)) return existing;
  auto logger = std::make_shared<spdlog::logger>(component, StdoutSink());
  logger->set_level(g_level);
  // A container's stdout is a pipe: flush each line so `kubectl logs` sees it at once.
  logger->flush_on(spdlog::level::trace);
  spdlog::register_logger(logger);
  return logger;
}

std::string Quote(std::string_view text) {
  bool bare = !text.empty();
  for (char c : text) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      bare = false;
      break;
    }
  }
  if (bare) return std::string(text);
  return DoubleQuoted(text);
}

std::string DoubleQuoted(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  out += '"';
  return out;
}

std::string Printable(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  out.reserve(text.size() + 2);
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      default: break;
    }
    if (byte >= 0x20 && byte < 0x7f) {
      out += c;
    } else {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  out += '"';
  return out;
}

}  // namespace replboot::log
