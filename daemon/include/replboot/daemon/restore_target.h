// restore.target, parsed once: what a primary that bootstraps from the store restores.
#ifndef REPLBOOT_DAEMON_RESTORE_TARGET_H_
#define REPLBOOT_DAEMON_RESTORE_TARGET_H_

#include <string_view>

#include "replboot/archive/pitr.h"
#include "replboot/base/status.h"

namespace replboot::daemon {

// "" or "latest": everything archived; an RFC 3339 time (2026-12-06T10:41:59Z); a GTID
// position (0-100-41[,1-100-7]). Strict (archive::ParseTimeTarget / ParseGtidTarget): anything
// else is kInvalidArgument naming restore.target and the value.
Result<archive::RestoreTarget> ParseRestoreTarget(std::string_view text);

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_RESTORE_TARGET_H_
