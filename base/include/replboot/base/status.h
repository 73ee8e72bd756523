// Errors as values: every fallible call returns Status or Result<T>.
//
// A Status carries a code (what kind of failure, for callers that branch on it)
// and a message that names the problem and where it happened (path, offset,
// peer), for the log line a human reads.
#ifndef REPLBOOT_BASE_STATUS_H_
#define REPLBOOT_BASE_STATUS_H_

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <utility>

namespace replboot {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad input from a user: config, flag, hostname
  kCorruption,       // bad input from a peer or a file: stream, info file
  kIOError,          // the OS said no: open, write, fsync, rename
  kNoSpace,          // ENOSPC/EDQUOT: a full disk is reported as such
  kUnavailable,      // a peer or server is not there (yet); worth retrying
  kTimeout,          // a deadline passed
  kPermissionDenied, // authentication or privileges
  kCancelled,        // shutdown asked us to stop
  kNotFound,
  kInternal,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "code: message", or "ok".
  std::string ToString() const;

  // Returns a copy whose message is "context: message", keeping the code.
  Status WithContext(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename T>
using Result = tl::expected<T, Status>;

// Builds an unexpected Status with a fmt-formatted message, for `return Error(...)`.
template <typename... Args>
tl::unexpected<Status> Error(StatusCode code, fmt::format_string<Args...> format, Args&&... args) {
  return tl::unexpected(Status(code, fmt::format(format, std::forward<Args>(args)...)));
}
inline tl::unexpected<Status> Error(Status status) { return tl::unexpected(std::move(status)); }

// Status from errno after a failed syscall: "<what>: <strerror>", with ENOSPC/EDQUOT
// mapped to kNoSpace so a full disk is reported as such.
Status ErrnoStatus(int err, std::string_view what);

}  // namespace replboot

#define REPLBOOT_RETURN_IF_ERROR(expr)              \
  do {                                              \
    ::replboot::Status replboot_status_ = (expr);   \
    if (!replboot_status_.ok()) return tl::unexpected(std::move(replboot_status_)); \
  } while (0)

// The same for functions returning Status.
#define REPLBOOT_RETURN_STATUS_IF_ERROR(expr)            \
  do {                                                   \
    ::replboot::Status replboot_status_ = (expr);        \
    if (!replboot_status_.ok()) return replboot_status_; \
  } while (0)

#endif  // REPLBOOT_BASE_STATUS_H_
