#include "replboot/daemon/restore_target.h"

#include <string>

namespace replboot::daemon {

Result<archive::RestoreTarget> ParseRestoreTarget(std::string_view text) {
  if (text.empty() || text == "latest") {
    archive::RestoreTarget latest;
    latest.text = "latest";
    return latest;
  }
  // A time has ':' (hh:mm:ss); a GTID position never does.
  auto parsed = text.find(':') != std::string_view::npos ? archive::ParseTimeTarget(text)
                                                         : archive::ParseGtidTarget(text);
  if (!parsed) {
    return Error(StatusCode::kInvalidArgument,
                 "restore.target: {} (latest, an RFC 3339 time such as 2026-12-06T10:41:59Z, "
                 "or a GTID position such as 0-100-41)",
                 parsed.error().message());
  }
  return parsed;
}

}  // namespace replboot::daemon
