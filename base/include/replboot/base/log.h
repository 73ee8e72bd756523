// Logging to stdout, one line per event:
//   2026-11-25T13:05:01.123Z level=info component=daemon event=mysqld_started pid=42
// or, with SetFormat("json") (log.format = "json"), the same fields as one JSON object:
//   {"time":"2026-11-25T13:05:01.123Z","level":"info","component":"daemon","event":"mysqld_started","pid":"42"}
// Messages are logfmt fields (`event=... key=value`); use Quote() for free text.
// Never pass a secret to a logger.
#ifndef REPLBOOT_BASE_LOG_H_
#define REPLBOOT_BASE_LOG_H_

#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace replboot::log {

// Sets the level ("trace", "debug", "info", "warn", "error") of every logger,
// now and later. Unknown names leave the level unchanged and return false.
bool SetLevel(std::string_view level);

// Sets the line format of every logger: "logfmt" (the default) or "json". Unknown names
// leave the format unchanged and return false.
bool SetFormat(std::string_view format);

// The fields of a logfmt message, in order: `key=value` pairs (a value bare or as written by
// DoubleQuoted()), and the words that are no pair joined under "msg". For the JSON format.
std::vector<std::pair<std::string, std::string>> ParseLogfmt(std::string_view message);

// The logger of one component ("daemon", "conf", "backup", ...), created on first use.
std::shared_ptr<spdlog::logger> Get(const std::string& component);

// A logfmt value: bare when it is a simple token, else DoubleQuoted().
std::string Quote(std::string_view text);

// "text" with \" and \\ escaped and newlines as \n (also TOML's basic-string form).
std::string DoubleQuoted(std::string_view text);

// "text" for an error message or a log line when the bytes may be anything (from the network,
// a stream, a file): printable ASCII as is, \" \\ \n \r \t, every other byte as \xNN. Used
// instead of fmt's "{:?}", whose escaping of invalid UTF-8 aborts in some builds (clang with
// Debian's libspdlog, found by the parsers fuzzer).
std::string Printable(std::string_view text);

}  // namespace replboot::log

#endif  // REPLBOOT_BASE_LOG_H_
