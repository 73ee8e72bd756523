#include "replboot/daemon/replication_commands.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <memory>

#include "replboot/api/http_get.h"
#include "replboot/base/exit_code.h"
#include "replboot/base/log.h"
#include "replboot/conf/cli_flags.h"
#include "replboot/conf/identity.h"
#include "replboot/conf/render.h"
#include "replboot/daemon/node_settings.h"
#include "replboot/daemon/replication_wiring.h"
#include "replboot/replication/health.h"

namespace replboot::daemon {

namespace {

std::string Str(const nlohmann::json& j) {
  if (j.is_null()) return "-";
  if (j.is_string()) return j.get<std::string>().empty() ? "-" : j.get<std::string>();
  if (j.is_boolean()) return j.get<bool>() ? "yes" : "no";
  if (j.is_number_float()) return fmt::format("{:.3f}", j.get<double>());
  return j.dump();
}

std::string At(const nlohmann::json& j, const char* key) {
  return j.contains(key) ? Str(j[key]) : "-";
}

// A waiting primary's reason token (primary_recovery.h) in words.
std::string WaitingWords(const std::string& why) {
  if (why == "not_in_dns_yet") return "not in DNS yet";
  if (why == "dns_failing") return "DNS failing for its name";
  if (why == "silent") return "silent (no answer on its backup port)";
  if (why == "refused_our_secret") return "refused our secret";
  if (why == "answered_error") return "answered with an error";
  if (why == "cannot_serve") return "holds data it cannot serve us";
  if (why == "no_position") return "holds data, no GTID position";
  return why;
}

void RunStatus(const std::string& url, int timeout_ms) {
  auto response = api::HttpGet(url, std::chrono::milliseconds(timeout_ms));
  if (!response) {
    fmt::print(stderr, "replboot status: {}\n", response.error().message());
    cli::ExitCode() = 1;
    return;
  }
  nlohmann::json status =
      nlohmann::json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (response->status != 200 || status.is_discarded() || !status.is_object()) {
    fmt::print(stderr, "replboot status: GET {}: HTTP {}: {}\n", url, response->status,
               response->body.substr(0, 200));
    cli::ExitCode() = 1;
    return;
  }
  fmt::print("{}", FormatStatus(status));
  // Like a health check: non-zero when the node is not ready, so scripts can branch on it.
  if (!status.value("ready", false)) cli::ExitCode() = cli::kExitUnavailable;
}

void RunAgent(const conf::ConfigFlags& flags) {
  auto log = log::Get("replication");
  auto fail = [](const Status& status, int code) {
    fmt::print(stderr, "replboot replication-agent: {}\n", status.message());
    cli::ExitCode() = code;
  };
  auto loaded = conf::LoadFromFlags(flags);
  if (!loaded) return fail(loaded.error(), cli::kExitConfig);
  const conf::Config& config = loaded->config;
  auto settings = ResolveSettings(config, {.identity = true, .flavour = true, .mysql_user = false});
  if (!settings) return fail(settings.error(), cli::kExitConfig);

  Prepared prepared = PrepareReplication(*settings);
  if (!prepared.fatal.ok()) return fail(prepared.fatal, cli::kExitFailed);

  boost::asio::io_context io;
  api::Server node(ApiOptionsFor(*settings));
  node.SetLastError(prepared.error);
  Status started = node.Start(io);
  if (!started.ok()) return fail(started, cli::kExitFailed);
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    log->info("event=agent_stopping signal={}", signal);
    node.Stop();
  });
  io.run();
}

}  // namespace

std::string FormatStatus(const nlohmann::json& s) {
  std::string out;
  auto row = [&](const std::string& key, const std::string& value) {
    out += fmt::format("{:<22} {}\n", key, value);
  };
  row("role", At(s, "role"));
  row("ordinal", At(s, "ordinal"));
  row("server_id", At(s, "server_id"));
  row("flavour", At(s, "flavour"));
  row("mysqld", s.value("mysqld_up", false) ? "up" : "down: " + At(s, "mysqld_error"));
  row("read_only", At(s, "read_only"));
  row("gtid_position", At(s, "gtid_position"));
  std::string ready = s.value("ready", false) ? "yes" : "no";
  row("ready", ready + " (" + At(s, "ready_reason") + ")");
  if (s.contains("replication") && s["replication"].is_object()) {
    const auto& r = s["replication"];
    row("source", At(r, "source_host") + ":" + At(r, "source_port"));
    row("io_thread", At(r, "io_running"));
    row("sql_thread", At(r, "sql_running"));
    std::string lag = At(s, "lag_seconds");
    if (lag != "-") lag += "s (" + At(s, "lag_source") + ")";
    row("lag", lag + ", max " + At(s, "max_lag_seconds") + "s");
    if (At(r, "last_io_error") != "-") row("last_io_error", At(r, "last_io_error"));
    if (At(r, "last_sql_error") != "-") row("last_sql_error", At(r, "last_sql_error"));
  } else {
    row("replication", "not configured");
  }
  if (s.contains("clone") && s["clone"].is_object()) {
    const auto& c = s["clone"];
    // The server words it (DescribeClone); an older server's JSON has no summary.
    std::string clone = At(c, "summary");
    if (clone == "-") {
      clone = At(c, "phase");
      if (clone != "none") {
        clone += fmt::format(", {} bytes", At(c, "bytes"));
        if (At(c, "total_bytes") != "0") clone += " of " + At(c, "total_bytes");
        if (At(c, "donor") != "-") clone += " from " + At(c, "donor");
      }
    }
    row("clone", clone);
  }
  if (s.contains("recovery") && s["recovery"].is_object() &&
      !s["recovery"].value("state", std::string()).empty()) {
    const auto& r = s["recovery"];
    const std::string state = r.value("state", std::string());
    const std::string reason = At(r, "reason");
    std::string words;
    if (state == "healthy") {
      words = "healthy";
    } else if (state == "waiting") {
      words = "waiting (the server retries): " + reason;
    } else if (state == "diverged") {
      words = "DIVERGED, never ready until a person acts: " + reason;
    } else if (state == "failed") {
      words = "FAILED, needs a person: " + reason;
    } else if (state == "reclone_pending") {
      words = r["reclone_in_seconds"].is_number()
                  ? fmt::format("waiting to re-clone in {:.0f} s: {}",
                                r["reclone_in_seconds"].get<double>(), reason)
                  : "waiting to re-clone: " + reason;
    } else if (state == "reclone_refused") {
      words = "re-clone refused: " + reason;
    } else if (state == "recloning") {
      words = "re-cloning: " + reason;
    } else {
      words = state + ": " + reason;
    }
    row("recovery", words);
    if (At(r, "errant_gtids") != "-") {
      row("errant_gtids", fmt::format("{} ({} transaction(s) the primary lacks)",
                                      At(r, "errant_gtids"), At(r, "errant_transactions")));
    }
    if (At(r, "gtid_relation") != "-") row("gtid_vs_primary", At(r, "gtid_relation"));
    if (At(r, "divergence_error") != "-") row("gtid_check_error", At(r, "divergence_error"));
    std::string reclones = At(r, "reclones");
    if (r.value("reclones", 0) > 0 && At(r, "last_reclone_reason") != "-") {
      reclones += ", last because " + At(r, "last_reclone_reason");
    }
    row("auto_reclones", reclones);
  }
  if (s.contains("bootstrap") && s["bootstrap"].is_object() &&
      At(s["bootstrap"], "plan") != "-") {
    // The primary asked its peers before initializing: what it decided and why, in words.
    const auto& b = s["bootstrap"];
    std::string line = At(b, "plan") + " (" + At(b, "reason") + ")";
    if (At(b, "donor") != "-") line += " from " + At(b, "donor");
    row("bootstrap", line);
    if (At(b, "detail") != "-") row("bootstrap_why", At(b, "detail"));
    if (b.contains("waiting_for") && b["waiting_for"].is_array()) {
      // One row per peer it waits for, in plain words: what to mend is then plain too.
      for (const auto& w : b["waiting_for"]) {
        if (!w.is_object()) continue;
        row("waiting_for", fmt::format("{}: {} ({})", At(w, "peer"),
                                       WaitingWords(At(w, "why")), At(w, "detail")));
      }
      if ((At(b, "plan") == "wait" || At(b, "plan") == "conflict") &&
          At(b, "override_file") != "-") {
        row("override", fmt::format("to initialize empty, discarding the peers' data: echo "
                                    "\"initialize empty, discarding the peers' data\" > {}",
                                    At(b, "override_file")));
      }
    }
  }
  row("backups_served", At(s, "backups_served"));
  row("last_error", At(s, "last_error"));
  return out;
}

void AddReplicationCommands(CLI::App& app) {
  struct StatusArgs {
    std::string url = "http://127.0.0.1:8008/status";
    int timeout_ms = 5000;
  };
  auto status_args = std::make_shared<StatusArgs>();
  CLI::App* status =
      app.add_subcommand("status", "print this node's role, replication and lag as a table");
  status->add_option("--url", status_args->url, "the node's /status URL")->capture_default_str();
  status->add_option("--timeout-ms", status_args->timeout_ms, "give up after this long")
      ->capture_default_str();
  status->callback([status_args] { RunStatus(status_args->url, status_args->timeout_ms); });

  auto agent_flags = std::make_shared<conf::ConfigFlags>();
  CLI::App* agent = app.add_subcommand("replication-agent",
                                       "against a running mysqld: users (primary) or replication "
                                       "setup (replica), then the health server");
  agent->group("");  // hidden: `replboot run` does this itself
  conf::AddConfigFlags(agent, agent_flags.get());
  agent->callback([agent_flags] { RunAgent(*agent_flags); });
}

}  // namespace replboot::daemon
