#include "replboot/base/exit_code.h"

namespace replboot::cli {

int& ExitCode() {
  static int code = kExitOk;
  return code;
}

int ExitCodeFor(const Status& status) {
  if (status.ok()) return kExitOk;
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
      return kExitConfig;
    case StatusCode::kPermissionDenied:
      return kExitRefused;
    case StatusCode::kNoSpace:
      return kExitNoSpace;
    default:
      return kExitFailed;
  }
}

}  // namespace replboot::cli
