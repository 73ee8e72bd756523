#include "replboot/clone/commands.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <memory>

#include "replboot/base/exit_code.h"
#include "replboot/base/log.h"
#include "replboot/clone/backup_server.h"
#include "replboot/clone/clone.h"
#include "replboot/clone/config_options.h"
#include "replboot/conf/cli_flags.h"

namespace replboot::clone {

namespace {

// Exit codes: 0 ok, 1 clone/serve failed, 2 configuration, 3 authentication, 4 no space.
int ExitCodeFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      return 2;
    case StatusCode::kPermissionDenied:
      return 3;
    case StatusCode::kNoSpace:
      return 4;
    default:
      return 1;
  }
}

void Fail(const std::string& event, const Status& s) {
  log::Get("clone")->error("event={} code={} error={}", event, StatusCodeName(s.code()),
                           log::Quote(s.message()));
  cli::ExitCode() = ExitCodeFor(s);
}

}  // namespace

void AddCommands(CLI::App& app) {
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
      auto options = CloneOptionsFromConfig(loaded->config);
      if (!options) return Fail("config_invalid", options.error());
      options->force_reclone = *force;
      std::string peer = *from;
      if (peer.find(':') == std::string::npos || (peer.front() == '[' && peer.back() == ']')) {
        peer += ":" + std::to_string(loaded->config.backup.port);
      }
      RetryPolicy policy;
      policy.max_rounds = std::max(1, *rounds);
      auto result =
          CloneFromPeers([peer] { return std::vector<std::string>{peer}; }, *options, policy);
      if (!result) return Fail("clone_failed", result.error());
      cli::ExitCode() = 0;
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
      auto options = ServerOptionsFromConfig(loaded->config);
      if (!options) return Fail("config_invalid", options.error());
      boost::asio::io_context io;
      BackupServer server(io, *options);
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
      cli::ExitCode() = 0;
    });
  }
}

}  // namespace replboot::clone
