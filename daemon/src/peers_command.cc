// `replboot peers`: which peers DNS knows, which answer, and which would be the donor.

#include <signal.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "replboot/base/exit_code.h"
#include "replboot/base/log.h"
#include "replboot/conf/cli_flags.h"
#include "replboot/conf/identity.h"
#include "replboot/daemon/commands.h"
#include "replboot/daemon/node_settings.h"
#include "replboot/discovery/ares_resolver.h"
#include "replboot/discovery/peers.h"
#include "replboot/discovery/prober.h"

namespace replboot::daemon {

namespace asio = boost::asio;
using namespace discovery;  // NOLINT: this file is discovery's command line

namespace {

// A backup endpoint that accepts within this long is up; one that does not is
// listed as unreachable (the clone's own connect has its own, longer, deadline).
constexpr std::chrono::milliseconds kProbeTimeout{3000};

template <typename T>
std::string ToText(const T& value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

std::string AddressesText(const PeerReport& peer) {
  if (peer.addresses.empty()) return "-";
  std::string text;
  for (const auto& a : peer.addresses) {
    if (!text.empty()) text += ',';
    text += a.to_string();
  }
  return text;
}

std::string NoDonorReason(const conf::Identity& self, const Discovery& d) {
  if (d.peers.empty())
    return fmt::format("{} is ordinal 0, the primary: it has no donor", self.hostname);
  if (d.cancelled) return "interrupted";
  if (d.deadline_passed)
    return fmt::format("no peer answered before the deadline ({} rounds)", d.rounds);
  return fmt::format("no peer answered and no failure is worth retrying ({} rounds)", d.rounds);
}

// How the endpoints were probed, for the reader of the table.
std::string ProbeText(const std::string& probe_kind) {
  return probe_kind == "authenticated"
             ? "authenticated hello (backup.secret, flavour and version checked)"
             : "TCP connect only (no backup.secret configured: secret and version not checked)";
}

void PrintTable(const conf::Identity& self, const Discovery& d, const std::string& probe_kind) {
  std::vector<std::array<std::string, 5>> rows;
  rows.push_back({"ORDINAL", "NAME", "ADDRESSES", "PORT", "STATUS"});
  for (const auto& p : d.peers) {
    rows.push_back({std::to_string(p.candidate.ordinal), p.candidate.name, AddressesText(p),
                    std::to_string(p.port) + (p.port_from_srv ? " (srv)" : ""), p.Summary()});
  }
  std::array<size_t, 5> width{};
  for (const auto& row : rows) {
    for (size_t i = 0; i < 4; ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out = fmt::format("probe: {}\n", ProbeText(probe_kind));
  for (const auto& row : rows) {
    for (size_t i = 0; i < 4; ++i) out += fmt::format("{:<{}}  ", row[i], width[i]);
    out += row[4] + "\n";
  }
  if (const PeerReport* donor = d.Donor()) {
    out += fmt::format("donor: {} (ordinal {}) at {}\n", donor->candidate.name,
                       donor->candidate.ordinal, ToText(*donor->answered));
  } else {
    out += fmt::format("donor: none: {}\n", NoDonorReason(self, d));
  }
  std::cout << out << std::flush;
}

void PrintJson(const conf::Identity& self, Policy policy, const Discovery& d,
               const std::string& probe_kind) {
  nlohmann::json peers = nlohmann::json::array();
  for (const auto& p : d.peers) {
    nlohmann::json addresses = nlohmann::json::array();
    for (const auto& a : p.addresses) addresses.push_back(a.to_string());
    peers.push_back({
        {"ordinal", p.candidate.ordinal},
        {"name", p.candidate.name},
        {"addresses", addresses},
        {"port", p.port},
        {"port_from_srv", p.port_from_srv},
        {"state", PeerStateName(p.state)},
        {"dns_error", p.dns_failure ? std::string(LookupErrorName(p.dns_failure->error)) : ""},
        {"summary", p.Summary()},
        {"lookups", p.lookups},
    });
  }
  nlohmann::json donor = nullptr;
  if (const PeerReport* chosen = d.Donor()) {
    donor = {{"ordinal", chosen->candidate.ordinal},
             {"name", chosen->candidate.name},
             {"endpoint", ToText(*chosen->answered)}};
  }
  nlohmann::json doc = {{"hostname", self.hostname},
                        {"ordinal", self.ordinal},
                        {"policy", PolicyName(policy)},
                        {"probe", probe_kind},
                        {"rounds", d.rounds},
                        {"cancelled", d.cancelled},
                        {"deadline_passed", d.deadline_passed},
                        {"donor", donor},
                        {"peers", peers}};
  if (!d.Donor()) doc["reason"] = NoDonorReason(self, d);
  std::cout << doc.dump() << std::endl;
}

int RunPeers(const conf::ConfigFlags& flags, bool json) {
  auto loaded = conf::LoadFromFlags(flags);
  if (!loaded) {
    std::cerr << "replboot peers: " << loaded.error().message() << "\n";
    return cli::kExitConfig;
  }
  const conf::Config& config = loaded->config;
  // The flavour only matters to the authenticated probe (the donor's must match ours).
  const bool authenticate = !config.backup.secret.empty() || !config.backup.secret_file.empty();
  auto settings =
      ResolveSettings(config, {.identity = true, .flavour = authenticate, .mysql_user = false});
  if (!settings) {
    std::cerr << "replboot peers: " << settings.error().message() << "\n";
    return cli::kExitConfig;
  }
  const conf::Identity* self = &settings->identity;
  auto policy = ParsePolicy(config.dns.policy);
  auto options = DiscoverOptionsFor(*settings);
  if (!policy || !options) {
    std::cerr << "replboot peers: " << (policy ? options.error() : policy.error()).message()
              << "\n";
    return cli::kExitConfig;
  }
  options->probe_all = true;  // the table shows every candidate, not only up to the donor

  asio::io_context io;
  auto resolver = AresResolver::Create(io.get_executor(), AresOptionsFor(config));
  if (!resolver) {
    std::cerr << "replboot peers: " << resolver.error().message() << "\n";
    return cli::ExitCodeFor(resolver.error());
  }
  auto authenticated = MakeAuthenticatedProber(*settings, kProbeTimeout);
  if (!authenticated) {
    std::cerr << "replboot peers: " << authenticated.error().message() << "\n";
    return cli::kExitConfig;
  }
  TcpProber tcp_prober(kProbeTimeout);
  Prober& prober = *authenticated ? **authenticated : tcp_prober;
  const std::string probe_kind = *authenticated ? "authenticated" : "tcp";

  // SIGTERM/SIGINT cancel the discovery through its cancellation slot (timers,
  // probes and lookups in flight complete at once) so the command returns promptly.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::cancellation_signal cancel;
  int signal_number = 0;
  signals.async_wait([&](boost::system::error_code ec, int signo) {
    if (ec) return;
    signal_number = signo;
    log::Get("discovery")->info("event=signal signal={} action=cancel_lookups", signo);
    cancel.emit(asio::cancellation_type::terminal);
    (*resolver)->Cancel();
  });
  std::optional<Discovery> discovery;
  std::string failure;
  asio::co_spawn(
      io, DiscoverPeers(**resolver, prober, std::move(*options)),
      asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, Discovery d) {
        signals.cancel();
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            failure = ex.what();
          }
          return;
        }
        discovery = std::move(d);
      }));
  io.run();
  if (!discovery) {
    std::cerr << "replboot peers: discovery failed: " << failure << "\n";
    return cli::kExitFailed;
  }
  if (json) {
    PrintJson(*self, *policy, *discovery, probe_kind);
  } else {
    PrintTable(*self, *discovery, probe_kind);
  }
  if (signal_number != 0) return cli::kExitSignalBase + signal_number;
  return discovery->Donor() ? cli::kExitOk : cli::kExitUnavailable;
}

}  // namespace

void AddPeersCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("peers",
                                 "resolve the peers through DNS, probe their backup endpoints, "
                                 "and show which one would be the donor; retries until "
                                 "dns.lookup_deadline while none answers (--set "
                                 "dns.lookup_deadline=1 to give up after about a second). With "
                                 "backup.secret "
                                 "set, each endpoint gets the authenticated hello (secret, "
                                 "flavour, version, busy); without it only a TCP connect");
  auto flags = std::make_shared<conf::ConfigFlags>();
  auto json = std::make_shared<bool>(false);
  conf::AddConfigFlags(cmd, flags.get());
  cmd->add_flag("--json", *json, "one JSON document instead of the table");
  cmd->callback([flags, json] { cli::ExitCode() = RunPeers(*flags, *json); });
}

}  // namespace replboot::daemon
