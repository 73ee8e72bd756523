// AuthenticatedProber: discovery's Prober (discovery/prober.h) that asks a peer's backup
// endpoint for an authenticated probe (protocol.h, HELLO mode probe) instead of a bare TCP
// connect, so that discovery only picks a donor that would serve us: it knows our secret,
// is the very candidate discovery asked for (its handshake proves the candidate's ordinal),
// runs our flavour and major.minor version, and is not busy. The donor starts nothing.
//
// The handshake is blocking (poll with deadlines, net.h); it runs on a small thread pool
// owned by the prober so that the caller's io_context never blocks. A probe takes at most
// `timeout`; cancelling the awaiting coroutine is noticed when the probe returns.
#ifndef REPLBOOT_CLONE_PROBER_H_
#define REPLBOOT_CLONE_PROBER_H_

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "replboot/base/status.h"
#include "replboot/clone/clone.h"
#include "replboot/discovery/prober.h"

namespace replboot::clone {

class AuthenticatedProber final : public discovery::Prober {
 public:
  // `options`: secret, flavour, local tool (for the version check) and TLS settings.
  AuthenticatedProber(CloneOptions options, std::chrono::milliseconds timeout, int threads = 2);
  ~AuthenticatedProber() override;  // waits for probes in flight (each bounded by timeout)
  AuthenticatedProber(const AuthenticatedProber&) = delete;
  AuthenticatedProber& operator=(const AuthenticatedProber&) = delete;

  // Ok when a clone from `endpoint`, as `candidate`, could start now. Otherwise, naming the
  // endpoint: kPermissionDenied (wrong secret, or the node there is not candidate.ordinal),
  // kUnavailable (refused, busy, its server down), kTimeout, kInvalidArgument (flavour or
  // version mismatch), kCancelled.
  boost::asio::awaitable<Status> Probe(discovery::Candidate candidate,
                                       boost::asio::ip::tcp::endpoint endpoint) override;

  // What `endpoint` answered its last probe (ProbePeer), also when that answer made the
  // probe fail (busy, another version); nullopt when it never answered or another node than
  // the candidate answered. This is how
  // discovery's rounds (which only see a Status) also yield each peer's place in the
  // cluster (cluster id, data, role, GTID state). Forget() drops every answer, before a
  // new round.
  std::optional<ProbeInfo> Answer(const boost::asio::ip::tcp::endpoint& endpoint) const;
  void Forget();

 private:
  void Record(const boost::asio::ip::tcp::endpoint& endpoint, std::optional<ProbeInfo> info);

  CloneOptions options_;
  std::chrono::milliseconds timeout_;
  mutable std::mutex mu_;
  std::map<boost::asio::ip::tcp::endpoint, ProbeInfo> answers_;
  boost::asio::thread_pool pool_;  // last: joined before the answers go
};

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_PROBER_H_
