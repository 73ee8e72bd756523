#include "archive_command.h"

#include "replboot/base/exit_code.h"
#include "replboot/base/log.h"

namespace replboot::daemon {

void FailCommand(const std::string& event, const Status& s) {
  log::Get("archive")->error("event={} code={} error={}", event, StatusCodeName(s.code()),
                             log::Quote(s.message()));
  cli::ExitCode() = cli::ExitCodeFor(s);
}

std::optional<OpenedArchive> OpenArchiveCommand(const conf::ConfigFlags& flags,
                                                bool needs_flavour) {
  auto loaded = conf::LoadFromFlags(flags);
  if (!loaded) {
    FailCommand("config_invalid", loaded.error());
    return std::nullopt;
  }
  auto settings = ResolveSettings(loaded->config, {.identity = false, .flavour = needs_flavour,
                                                   .mysql_user = needs_flavour});
  if (!settings) {
    FailCommand("config_invalid", settings.error());
    return std::nullopt;
  }
  auto archive = OpenArchive(*settings);
  if (!archive) {
    FailCommand("config_invalid", archive.error());
    return std::nullopt;
  }
  return OpenedArchive{std::move(*settings), std::move(*archive)};
}

}  // namespace replboot::daemon
