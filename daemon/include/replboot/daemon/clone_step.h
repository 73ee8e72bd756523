// The clone step of `replboot run` (the prepare_datadir hook of a replica whose datadir the
// bootstrap table left empty and clean):
//
//   discover peers in policy order (dns.policy, nearest-lower by default; each probed with
//   the authenticated hello) → clone from the first that would serve us, on failure from the
//   next → rounds with backoff until a clone commits or a stop is requested
//
// Built once per run from the node's settings: the c-ares resolver, the authenticated prober
// (and with it the TLS context) and the clone options are made here once and reused by every
// round. One stop token reaches every phase: DNS lookups and probes (cancelled through the
// discovery coroutine's cancellation slot), connect, handshake, stream, --prepare and the
// backoff between rounds.
#ifndef REPLBOOT_DAEMON_CLONE_STEP_H_
#define REPLBOOT_DAEMON_CLONE_STEP_H_

#include <boost/asio/io_context.hpp>
#include <memory>
#include <stop_token>
#include <vector>

#include "replboot/base/status.h"
#include "replboot/clone/clone.h"
#include "replboot/daemon/node_settings.h"
#include "replboot/discovery/ares_resolver.h"

namespace replboot::daemon {

class CloneStep {
 public:
  // kInvalidArgument for settings a clone cannot run with (no backup.secret, bad DNS options).
  static Result<std::unique_ptr<CloneStep>> Create(const NodeSettings& settings);
  ~CloneStep();
  CloneStep(const CloneStep&) = delete;
  CloneStep& operator=(const CloneStep&) = delete;

  // Blocks until a clone committed into the (empty) datadir: Ok; kCancelled once `stop` was
  // requested. `on_progress` sees every phase (clone.h). `force_reclone`: the datadir holds
  // data that the clone replaces (kept aside until it commits): a replica's re-clone.
  Status Run(std::stop_token stop, const clone::CloneProgressCallback& on_progress,
             bool force_reclone = false);

  // One discovery round: every reachable candidate's backup endpoint, in policy order; empty
  // when none answers before the discovery deadline or `stop` was requested.
  std::vector<clone::DonorEndpoint> DiscoverDonors(std::stop_token stop);

 private:
  CloneStep() = default;

  boost::asio::io_context io_;  // the resolver's and discovery's loop, run by Run()'s thread
  std::unique_ptr<discovery::AresResolver> resolver_;
  std::unique_ptr<discovery::Prober> prober_;
  discovery::DiscoverOptions discover_;
  clone::CloneOptions clone_;
};

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_CLONE_STEP_H_
