#include "replboot/daemon/commands.h"

#include <memory>

#include "replboot/base/exit_code.h"
#include "replboot/base/log.h"
#include "replboot/conf/cli_flags.h"
#include "replboot/conf/config.h"
#include "replboot/conf/identity.h"
#include "replboot/daemon/bootstrap.h"
#include "replboot/daemon/node_services.h"
#include "replboot/daemon/node_settings.h"
#include "replboot/daemon/supervisor.h"

namespace replboot::daemon {
namespace {

constexpr int kConfigError = 2;

int Run(const conf::ConfigFlags& flags) {
  // First, before anything can start a thread: every thread inherits this mask,
  // so no handled signal is ever delivered asynchronously.
  if (Status s = Supervisor::BlockSignals(); !s.ok()) {
    log::Get("daemon")->error("event=signal_setup_failed error={}", log::Quote(s.ToString()));
    return 1;
  }
  auto log = log::Get("daemon");
  auto loaded = conf::LoadFromFlags(flags);
  if (!loaded) {
    log->error("event=config_invalid error={}", log::Quote(loaded.error().message()));
    return kConfigError;
  }
  const conf::Config& config = loaded->config;
  // Everything derived from the configuration, once (hostname, secrets, flavour, TLS
  // certificates): a problem with any of them stops replboot before anything starts.
  auto settings = ResolveSettings(config);
  if (!settings) {
    log->error("event=config_invalid error={}", log::Quote(settings.error().message()));
    return kConfigError;
  }
  const conf::Identity* identity = &settings->identity;
  log->info("event=starting hostname={} ordinal={} role={} server_id={} datadir={}",
            log::Quote(identity->hostname), identity->ordinal, conf::RoleName(identity->role),
            identity->server_id, log::Quote(config.mysql.datadir));

  SupervisorOptions options;
  options.shutdown_grace = std::chrono::seconds(config.mysql.shutdown_grace);
  Supervisor supervisor(options);
  NodeContext ctx;
  ctx.settings = &*settings;
  ctx.supervisor = &supervisor;
  ctx.stop = supervisor.StopToken();
  NodeServices services;
  BootstrapHooks hooks = services.Hooks();
  // Run() hands reaping back when its signal loop ends: the services' own children (a backup
  // tool being served) are then waited for directly.
  int code = supervisor.Run([&](Supervisor&) { return RunNode(ctx, hooks); });
  services.Stop();
  log->info("event=exit code={}", code);
  return code;
}

}  // namespace

void AddCommands(CLI::App& app) {
  // CLI11 keeps pointers into the flags until parsing ends, i.e. for the life of `app`.
  auto flags = std::make_shared<conf::ConfigFlags>();
  CLI::App* run = app.add_subcommand("run",
                                     "container ENTRYPOINT: render the config, initialize or clone "
                                     "the datadir, run and supervise mysqld");
  conf::AddConfigFlags(run, flags.get());
  run->callback([flags] { cli::ExitCode() = Run(*flags); });
}

}  // namespace replboot::daemon
