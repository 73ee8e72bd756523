// The Prober seam: "does this peer's backup endpoint answer?". Today a TCP
// connect; the clone's authenticated hello plugs in through the same interface.
#ifndef REPLBOOT_DISCOVERY_PROBER_H_
#define REPLBOOT_DISCOVERY_PROBER_H_

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <string>

#include "replboot/base/status.h"

namespace replboot::discovery {

// "10.0.0.7:3307", "[fd00::7]:3307": how endpoints appear in logs, reports and peer lists.
std::string EndpointText(const boost::asio::ip::tcp::endpoint& endpoint);

class Prober {
 public:
  virtual ~Prober() = default;
  // Ok when the endpoint answers; otherwise why not, naming the endpoint:
  // kUnavailable (refused, unreachable), kTimeout, kCancelled.
  virtual boost::asio::awaitable<Status> Probe(boost::asio::ip::tcp::endpoint endpoint) = 0;
};

// Connects and closes again. Runs on the executor of the awaiting coroutine.
class TcpProber final : public Prober {
 public:
  explicit TcpProber(std::chrono::milliseconds timeout) : timeout_(timeout) {}
  boost::asio::awaitable<Status> Probe(boost::asio::ip::tcp::endpoint endpoint) override;

 private:
  std::chrono::milliseconds timeout_;
};

}  // namespace replboot::discovery

#endif  // REPLBOOT_DISCOVERY_PROBER_H_
