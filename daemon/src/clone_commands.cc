// `replboot clone` and `replboot serve-backup`: one clone by hand, and the backup server alone,
// wired from the configuration here (node_settings.h) like `replboot run`.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <memory>

#include "replboot/base/exit_code.h"
#include "replboot/base/log.h"
#include "replboot/clone/backup_server.h"
#include "replboot/clone/clone.h"
#include "replboot/conf/cli_flags.h"
#include "replboot/daemon/bootstrap.h"
#include "replboot/daemon/commands.h"
#include "replboot/daemon/node_settings.h"
#include "stop_on_signal.h"

namespace replboot::daemon {

namespace {

void Fail(const std::string& event, const Status& s) {
  log::Get("clone")->error("event={} code={} error={}", event, StatusCodeName(s.code()),
                           log::Quote(s.message()));
  cli::ExitCode() = cli::ExitCodeFor(s);
}

}  // namespace

void AddCloneCommands(CLI::App& app) {
  {
    auto flags = std::make_shared<conf::ConfigFlags>();
    auto from = std::make_shared<std::string>();
    auto force = std::make_shared<bool>(false);
    auto rounds = std::make_shared<int>(1);
    CLI::App* cmd =
        app.add_subcommand("clone", "Clone this node's datadir from a peer's backup server");
    conf::AddConfigFlags(cmd, flags.get());
    cmd->add_option("--from", *from,
                    "donor's backup endpoint HOST[:PORT] (port default backup.port)")
        ->required();
    cmd->add_flag("--force-reclone", *force,
                  "replace an existing datadir (kept aside until the clone commits)");
    cmd->add_option("--attempts", *rounds, "attempts, with backoff between them (default 1)");
    cmd->callback([flags, from, force, rounds] {
      auto loaded = conf::LoadFromFlags(*flags);
      if (!loaded) return Fail("config_invalid", loaded.error());
      auto settings = ResolveSettings(loaded->config, {.identity = false});
      if (!settings) return Fail("config_invalid", settings.error());
      auto options = CloneOptionsFor(*settings);
      if (!options) return Fail("config_invalid", options.error());
      auto donor = BackupEndpoint(*from, static_cast<uint16_t>(loaded->config.backup.port));
      if (!donor) return Fail("clone_failed", donor.error());
      // The same table as `replboot run`: leftovers of an interrupted clone are settled first.
      auto action = SettleDatadir(options->datadir, conf::Role::kReplica, /*can_clone=*/true,
                                  *force);
      if (!action) return Fail("clone_failed", action.error());
      if (*action != BootstrapAction::kClone) {
        return Fail("clone_failed",
                    Status(StatusCode::kInvalidArgument,
                           fmt::format("{} already holds data ({}); use --force-reclone to "
                                       "replace it",
                                       options->datadir, BootstrapActionName(*action))));
      }
      options->force_reclone = *force;
      StopOnSignal signals;
      options->stop = signals.token();
      clone::RetryPolicy policy;
      policy.max_rounds = std::max(1, *rounds);
      const clone::Endpoint endpoint = *donor;
      auto result = clone::CloneFromPeers(
          [endpoint] {
            return std::vector<clone::DonorEndpoint>{{endpoint, std::nullopt}};
          },
          *options, policy);
      if (!result) {
        if (signals.signal() != 0) {
          Fail("clone_cancelled", result.error());
          cli::ExitCode() = cli::kExitSignalBase + signals.signal();
          return;
        }
        return Fail("clone_failed", result.error());
      }
      cli::ExitCode() = cli::kExitOk;
    });
  }
  {
    auto flags = std::make_shared<conf::ConfigFlags>();
    CLI::App* cmd = app.add_subcommand("serve-backup",
                                       "Run only the backup server (backup.listen) until SIGTERM");
    conf::AddConfigFlags(cmd, flags.get());
    cmd->callback([flags] {
      auto loaded = conf::LoadFromFlags(*flags);
      if (!loaded) return Fail("config_invalid", loaded.error());
      auto settings =
          ResolveSettings(loaded->config, {.identity = false, .mysql_user = false});
      if (!settings) return Fail("config_invalid", settings.error());
      auto options = ServerOptionsFor(*settings);
      if (!options) return Fail("config_invalid", options.error());
      boost::asio::io_context io;
      clone::BackupServer server(io, *options);
      if (Status s = server.Start(); !s.ok()) return Fail("serve_failed", s);
      boost::asio::signal_set signals(io, SIGINT, SIGTERM);
      signals.async_wait([&](const boost::system::error_code& ec, int signo) {
        if (ec) return;
        log::Get("clone")->info("event=backup_server_stopping signal={}", signo);
        server.Stop();
        io.stop();
      });
      io.run();
      server.Stop();
      cli::ExitCode() = cli::kExitOk;
    });
  }
}

}  // namespace replboot::daemon
