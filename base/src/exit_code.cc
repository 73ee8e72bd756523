#include "replboot/base/exit_code.h"

namespace replboot::cli {

int& ExitCode() {
  static int code = 0;
  return code;
}

}  // namespace replboot::cli
