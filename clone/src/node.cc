#include "replboot/clone/node.h"

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <optional>
#include <thread>

#include "replboot/base/log.h"
#include "replboot/clone/clone.h"
#include "replboot/clone/config_options.h"
#include "replboot/clone/datadir.h"
#include "replboot/clone/prober.h"
#include "replboot/discovery/ares_resolver.h"
#include "replboot/discovery/peers.h"

namespace replboot::clone {

namespace {

auto Log() { return log::Get("clone"); }

// A probe is a TCP connect, the HMAC handshake and one query on the donor.
constexpr std::chrono::milliseconds kProbeTimeout{3000};

// One discovery round on a private event loop: every reachable candidate's backup
// endpoint, in policy order. Empty when none answers before the discovery deadline.
std::vector<std::string> DiscoverDonors(const conf::Config& config, const conf::Identity& identity,
                                        discovery::Prober& prober,
                                        const std::atomic<bool>& cancel) {
  auto options = discovery::OptionsFromConfig(config, identity);
  if (!options) {
    Log()->error("event=clone_discovery_failed error={}", log::Quote(options.error().message()));
    return {};
  }
  options->probe_all = true;  // the next candidates are the fallbacks when the first fails
  boost::asio::io_context io;
  auto resolver = discovery::AresResolver::Create(io.get_executor(),
                                                  discovery::AresOptions::FromConfig(config));
  if (!resolver) {
    Log()->error("event=clone_discovery_failed error={}", log::Quote(resolver.error().message()));
    return {};
  }
  std::optional<discovery::Discovery> found;
  boost::asio::co_spawn(io, discovery::DiscoverPeers(**resolver, prober, *options),
                        [&](std::exception_ptr e, discovery::Discovery d) {
                          if (!e) found = std::move(d);
                        });
  while (!found && !cancel.load()) {
    if (io.run_for(std::chrono::milliseconds(200)) == 0 && io.stopped()) break;
  }
  std::vector<std::string> donors;
  if (found) {
    for (const auto& peer : found->peers) {
      Log()->info("event=clone_candidate ordinal={} name={} state={} summary={}",
                  peer.candidate.ordinal, peer.candidate.name, discovery::PeerStateName(peer.state),
                  log::Quote(peer.Summary()));
      if (peer.state == discovery::PeerState::kReachable && peer.answered)
        donors.push_back(discovery::EndpointText(*peer.answered));
    }
  }
  resolver->reset();  // before the io_context goes
  return donors;
}

}  // namespace

Status CloneIntoDatadir(const conf::Config& config, const conf::Identity& identity,
                        const std::function<bool()>& stopping,
                        const CloneProgressCallback& on_progress) {
  const bool is_primary = identity.role == conf::Role::kPrimary;
  auto action = Recover(config.mysql.datadir, is_primary, /*force_reclone=*/false);
  if (!action) return action.error();
  if (*action != Action::kClone) {
    Log()->info("event=clone_not_needed datadir={} action={}", log::Quote(config.mysql.datadir),
                ActionName(*action));
    return Status::Ok();
  }
  auto options = CloneOptionsFromConfig(config);
  if (!options) return options.error();

  std::atomic<bool> cancel{false};
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done.load()) {
      if (stopping && stopping()) cancel.store(true);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  options->cancel = &cancel;
  options->on_progress = on_progress;
  RetryPolicy policy;  // until a clone commits or we are stopped
  // Candidates are probed with the authenticated hello, so a peer with another secret, an
  // incompatible version or no free backup slot is not chosen in the first place.
  AuthenticatedProber prober(*options, kProbeTimeout);
  auto result = CloneFromPeers([&] { return DiscoverDonors(config, identity, prober, cancel); },
                               *options, policy);
  done.store(true);
  watcher.join();
  if (!result) return result.error();
  return Status::Ok();
}

}  // namespace replboot::clone
