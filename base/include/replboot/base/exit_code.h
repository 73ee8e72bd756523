// The exit status of every `replboot` subcommand, from one table (README "Exit codes"), so a
// script can branch on it whichever command it ran. CLI11 callbacks return void, so a command
// sets ExitCode() and main() returns it (0 unless set).
//
//   code   meaning                                                 e.g.
//   0      done                                                    clone committed, node ready
//   1      failed: the operation did not succeed                   donor died mid-stream, bad
//                                                                  stream, mysqld ended by itself
//   2      configuration or usage: fix the settings or the flags   unknown key, no ordinal,
//                                                                  unreadable secret file
//   3      not there yet: the thing asked for is not available     `status`: node not ready;
//          (yet); retrying later may succeed                       `peers`: no donor answers
//   4      refused: a peer rejected our credentials                wrong backup.secret
//   5      no space left                                           datadir volume too small
//   128+N  stopped by signal N                                     143 after SIGTERM
#ifndef REPLBOOT_BASE_EXIT_CODE_H_
#define REPLBOOT_BASE_EXIT_CODE_H_

#include "replboot/base/status.h"

namespace replboot::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitConfig = 2;
inline constexpr int kExitUnavailable = 3;
inline constexpr int kExitRefused = 4;
inline constexpr int kExitNoSpace = 5;
inline constexpr int kExitSignalBase = 128;

int& ExitCode();

// The table's code for a failed operation's status: kInvalidArgument → 2,
// kPermissionDenied → 4, kNoSpace → 5, anything else → 1 (an ok status → 0).
int ExitCodeFor(const Status& status);

}  // namespace replboot::cli

#endif  // REPLBOOT_BASE_EXIT_CODE_H_
