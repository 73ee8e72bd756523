// The process exit status a `replboot` subcommand asks for. CLI11 callbacks return
// void, so a command sets this and main() returns it (0 unless set).
#ifndef REPLBOOT_BASE_EXIT_CODE_H_
#define REPLBOOT_BASE_EXIT_CODE_H_

namespace replboot::cli {

int& ExitCode();

}  // namespace replboot::cli

#endif  // REPLBOOT_BASE_EXIT_CODE_H_
