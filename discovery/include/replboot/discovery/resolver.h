// The Resolver seam: DNS as replboot sees it. With no API server, DNS is the only
// view of the cluster, so a lookup either yields addresses or says precisely why
// not: a name that does not exist yet (the pod is starting) is retried, a broken
// or silent server is reported as such.
#ifndef REPLBOOT_DISCOVERY_RESOLVER_H_
#define REPLBOOT_DISCOVERY_RESOLVER_H_

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

#include "replboot/base/status.h"

namespace replboot::discovery {

// Why a lookup produced no records. The kinds are distinguished because the
// reactions differ: kNxDomain/kNoData mean "not published (yet)", kServFail and
// kTimeout mean the DNS server itself is unwell, kCancelled means shutdown.
enum class LookupError {
  kNxDomain,   // the name does not exist (NXDOMAIN, after every search domain)
  kNoData,     // the name exists but has no record of the asked type
  kServFail,   // the server failed (SERVFAIL)
  kRefused,    // the server refused the query (REFUSED)
  kTimeout,    // no answer within the timeout, after every try
  kCancelled,  // the lookup was cancelled (shutdown)
  kOther,      // anything else c-ares reports (bad name, malformed answer, no memory)
};

// Stable lower-case token for logs and tables: "nxdomain", "servfail", "timeout", ...
std::string_view LookupErrorName(LookupError error);

struct LookupFailure {
  LookupError error = LookupError::kOther;
  std::string message;  // names the query and the cause: "mysql-1.mysql: NXDOMAIN (...)"

  // A Status for callers that only need errors as values: kNotFound for
  // NXDOMAIN/NODATA, kTimeout, kCancelled, kUnavailable for the rest.
  Status ToStatus() const;
};

template <typename T>
using Lookup = tl::expected<T, LookupFailure>;

struct SrvRecord {
  std::string target;  // without the trailing dot: "mysql-1.mysql.ns.svc.cluster.local"
  uint16_t port = 0;
  uint16_t priority = 0;
  uint16_t weight = 0;
};

class Resolver {
 public:
  virtual ~Resolver() = default;

  // A and AAAA records of `name`, with search domains applied as the resolver
  // is configured to. Addresses are deduplicated, IPv4 before IPv6.
  virtual boost::asio::awaitable<Lookup<std::vector<boost::asio::ip::address>>> ResolveAddresses(
      std::string name) = 0;

  // SRV records of `name` (e.g. "_backup._tcp.mysql"), search domains applied.
  virtual boost::asio::awaitable<Lookup<std::vector<SrvRecord>>> ResolveSrv(std::string name) = 0;

  // Fails every pending lookup with kCancelled; later lookups still work.
  virtual void Cancel() = 0;
};

}  // namespace replboot::discovery

#endif  // REPLBOOT_DISCOVERY_RESOLVER_H_
