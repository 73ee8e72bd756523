// The Resolver on c-ares, driven by the caller's Asio event loop.
//
// c-ares (1.18 on Debian 12) has no event thread of its own: it tells us through
// ARES_OPT_SOCK_STATE_CB which of its sockets it wants to read or write, and we
// wait for those with non-owning posix::stream_descriptors, then hand readiness
// back with ares_process_fd. A steady_timer set from ares_timeout() drives c-ares'
// own retransmissions and timeouts. No call blocks, nothing polls, and there is
// no thread per query: every lookup is a few callbacks on the loop.
//
// Lookups follow c-ares' defaults otherwise: /etc/hosts before DNS (as glibc),
// and the search list and ndots of the resolv.conf. SERVFAIL and REFUSED are
// reported as such (ARES_FLAG_NOCHECKRESP) instead of c-ares 1.18's
// "connection refused" after giving up on the only server.
#ifndef REPLBOOT_DISCOVERY_ARES_RESOLVER_H_
#define REPLBOOT_DISCOVERY_ARES_RESOLVER_H_

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "replboot/base/status.h"
#include "replboot/discovery/resolver.h"

namespace replboot::discovery {

struct AresOptions {
  // "127.0.0.1:5353", "[::1]:53", "10.0.0.10" (port 53). When empty, the
  // nameservers of `resolv_conf` are used.
  std::vector<std::string> servers;
  // Always read, for its search domains and options (ndots): inside a pod this is
  // what turns "mysql-0.mysql" into "mysql-0.mysql.<ns>.svc.cluster.local".
  // Must exist; "" leaves c-ares to its own default (/etc/resolv.conf if present).
  std::string resolv_conf = "/etc/resolv.conf";
  std::chrono::milliseconds timeout{2000};  // first try; c-ares grows it on later tries
  int tries = 3;

};

class AresResolver final : public Resolver {
 public:
  // kInvalidArgument for a malformed server list or a missing resolv.conf,
  // kIOError when c-ares cannot initialise; each names the offending value.
  static Result<std::unique_ptr<AresResolver>> Create(boost::asio::any_io_executor executor,
                                                      const AresOptions& options);

  // Pending lookups complete with kCancelled (through the executor, never inline),
  // c-ares' sockets are closed and nothing is leaked, whether or not the event
  // loop runs again. Must be destroyed before the io_context it runs on.
  ~AresResolver() override;

  AresResolver(const AresResolver&) = delete;
  AresResolver& operator=(const AresResolver&) = delete;

  // Both honour per-operation cancellation (the coroutine's cancellation slot):
  // a cancelled lookup completes at once with kCancelled.
  boost::asio::awaitable<Lookup<std::vector<boost::asio::ip::address>>> ResolveAddresses(
      std::string name) override;
  boost::asio::awaitable<Lookup<std::vector<SrvRecord>>> ResolveSrv(std::string name) override;
  void Cancel() override;

  // "127.0.0.1:5353,[::1]:53": the servers actually in use, for error messages.
  const std::string& ServersText() const;

  struct Impl;  // public only so that the c-ares callbacks in the .cc can name it

 private:
  explicit AresResolver(std::shared_ptr<Impl> impl);
  // Owned here only; the completion handlers of socket and timer waits hold weak
  // references, so a handler running after destruction finds nothing to touch
  // (and destroying the io_context never destroys the Impl from inside a handler).
  std::shared_ptr<Impl> impl_;
};

}  // namespace replboot::discovery

#endif  // REPLBOOT_DISCOVERY_ARES_RESOLVER_H_
