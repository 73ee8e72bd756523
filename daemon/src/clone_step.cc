#include "replboot/daemon/clone_step.h"

#include <optional>

#include "replboot/base/log.h"
#include "replboot/clone/cluster_id.h"
#include "replboot/clone/prober.h"
#include "replboot/discovery/peers.h"

namespace replboot::daemon {

namespace asio = boost::asio;

namespace {

auto Log() { return log::Get("clone"); }

// A probe is a TCP connect, the HMAC handshake and one query on the donor.
constexpr std::chrono::milliseconds kProbeTimeout{3000};

}  // namespace

Result<std::unique_ptr<CloneStep>> CloneStep::Create(const NodeSettings& settings) {
  std::unique_ptr<CloneStep> step(new CloneStep());
  auto clone_options = CloneOptionsFor(settings);
  if (!clone_options) return Error(clone_options.error());
  step->clone_ = std::move(*clone_options);
  // A re-clone replaces this cluster's data: only a donor of the same cluster may do that.
  // (A new replica has no id yet and takes its donor's.)
  if (auto id = clone::ReadClusterId(settings.config.mysql.datadir); id && *id) {
    step->clone_.expected_cluster_id = **id;
  }
  auto discover = DiscoverOptionsFor(settings);
  if (!discover) return Error(discover.error());
  step->discover_ = std::move(*discover);
  step->discover_.probe_all = true;  // the next candidates are the fallbacks when one fails
  auto resolver =
      discovery::AresResolver::Create(step->io_.get_executor(), AresOptionsFor(settings.config));
  if (!resolver) return Error(resolver.error());
  step->resolver_ = std::move(*resolver);
  // Candidates are probed with the authenticated hello, so a peer with another secret, an
  // incompatible version or no free backup slot is not chosen in the first place.
  step->prober_ = std::make_unique<clone::AuthenticatedProber>(step->clone_, kProbeTimeout);
  return step;
}

CloneStep::~CloneStep() {
  prober_.reset();
  resolver_.reset();  // before the io_context goes
}

std::vector<clone::DonorEndpoint> CloneStep::DiscoverDonors(std::stop_token stop) {
  auto found = discovery::RunDiscovery(io_, *resolver_, *prober_, discover_, stop);
  std::vector<clone::DonorEndpoint> donors;
  if (!found) return donors;
  for (const auto& peer : found->peers) {
    Log()->info("event=clone_candidate ordinal={} name={} state={} summary={}",
                peer.candidate.ordinal, peer.candidate.name, discovery::PeerStateName(peer.state),
                log::Quote(peer.Summary()));
    if (peer.state == discovery::PeerState::kReachable && peer.answered)
      // The probe proved the candidate's ordinal there; the clone insists on it again, as
      // the address may have changed hands since.
      donors.push_back({*peer.answered, peer.candidate.ordinal});
  }
  return donors;
}

Status CloneStep::Run(std::stop_token stop, const clone::CloneProgressCallback& on_progress,
                      bool force_reclone) {
  clone::CloneOptions options = clone_;
  options.force_reclone = force_reclone;
  options.stop = stop;
  options.on_progress = on_progress;
  clone::RetryPolicy policy;  // until a clone commits or we are stopped
  auto result = clone::CloneFromPeers([&] { return DiscoverDonors(stop); }, options, policy);
  if (!result) return result.error();
  return Status::Ok();
}

}  // namespace replboot::daemon
