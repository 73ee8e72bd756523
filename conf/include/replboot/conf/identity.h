// A node's identity from its hostname: StatefulSet pod `mysql-2` is ordinal 2,
// server-id offset + 2, and a replica; ordinal 0 is the primary.
#ifndef REPLBOOT_CONF_IDENTITY_H_
#define REPLBOOT_CONF_IDENTITY_H_

#include <cstdint>
#include <string>

#include "replboot/base/status.h"
#include "replboot/conf/config.h"

namespace replboot::conf {

struct Identity {
  std::string hostname;  // "mysql-2"
  std::string prefix;    // "mysql": the StatefulSet name, the part before the last '-'
  int64_t ordinal = 0;   // 2
  uint32_t server_id = 0;
  Role role = Role::kReplica;

  // DNS name of peer `ordinal` behind the headless Service: "<prefix>-<n>.<service>".
  std::string PeerName(int64_t ordinal, const std::string& service) const;
};

// kInvalidArgument naming the hostname and the expected form `<name>-<ordinal>`
// for `mysql`, `mysql-`, `mysql-x`, or an ordinal whose server-id would not fit
// in 32 bits (server-id 0 is also refused: MySQL treats it as "no replication").
Result<Identity> ParseIdentity(const std::string& hostname, int64_t server_id_offset);

}  // namespace replboot::conf

#endif  // REPLBOOT_CONF_IDENTITY_H_
