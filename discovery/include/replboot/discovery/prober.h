// The Prober seam: "does this peer's backup endpoint answer?". A TCP connect here; the
// clone's authenticated hello (clone/prober.h) plugs in through the same interface, and is
// told which candidate an endpoint belongs to so that it can insist on that very node.
#ifndef REPLBOOT_DISCOVERY_PROBER_H_
#define REPLBOOT_DISCOVERY_PROBER_H_

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <string>

#include "replboot/base/status.h"

namespace replboot::discovery {

// "10.0.0.7:3307", "[fd00::7]:3307": how endpoints appear in logs, reports and peer lists.
std::string EndpointText(const boost::asio::ip::tcp::endpoint& endpoint);

// A peer discovery may pick: StatefulSet ordinal and DNS name.
struct Candidate {
  int64_t ordinal = 0;
  std::string name;  // "mysql-1.mysql"
};

class Prober {
 public:
  virtual ~Prober() = default;
  // Ok when `endpoint` (one of `candidate`'s addresses) answers as `candidate`; otherwise why
  // not, naming the endpoint: kUnavailable (refused, unreachable), kTimeout, kCancelled, or
  // kPermissionDenied from a prober that can tell another node answered.
  virtual boost::asio::awaitable<Status> Probe(Candidate candidate,
                                               boost::asio::ip::tcp::endpoint endpoint) = 0;
};

// Connects and closes again (so it cannot tell which candidate answers). Runs on the
// executor of the awaiting coroutine.
class TcpProber final : public Prober {
 public:
  explicit TcpProber(std::chrono::milliseconds timeout) : timeout_(timeout) {}
  boost::asio::awaitable<Status> Probe(Candidate candidate,
                                       boost::asio::ip::tcp::endpoint endpoint) override;

 private:
  std::chrono::milliseconds timeout_;
};

}  // namespace replboot::discovery

#endif  // REPLBOOT_DISCOVERY_PROBER_H_
