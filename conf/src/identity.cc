#include "replboot/conf/identity.h"

#include <fmt/format.h>

#include <charconv>
#include <limits>
#include <string_view>
#include <system_error>

namespace replboot::conf {
namespace {

// Every rejection says the same thing about the expected form, so an operator who
// reads only the last line of a crash-looping pod's log still learns the fix.
tl::unexpected<Status> BadHostname(const std::string& hostname, std::string_view why) {
  return Error(StatusCode::kInvalidArgument,
               "hostname '{}': {}; expected the StatefulSet pod form <statefulset>-<ordinal> "
               "(e.g. mysql-0), or set node.hostname (--hostname)",
               hostname, why);
}

}  // namespace

std::string_view RoleName(Role r) {
  switch (r) {
    case Role::kPrimary:
      return "primary";
    case Role::kReplica:
      return "replica";
  }
  return "unknown";
}

std::string Identity::PeerName(int64_t peer_ordinal, const std::string& service) const {
  std::string name = fmt::format("{}-{}", prefix, peer_ordinal);
  if (!service.empty()) name += "." + service;
  return name;
}

Result<Identity> ParseIdentity(const std::string& hostname, int64_t server_id_offset) {
  // A pod's hostname is its short name; a FQDN (mysql-2.mysql.ns.svc) would put the
  // last '-' in the wrong label, so only the first label counts.
  if (hostname.empty()) return BadHostname(hostname, "it is empty");
  std::string_view name(hostname);
  if (auto dot = name.find('.'); dot != std::string_view::npos) name = name.substr(0, dot);

  size_t dash = name.rfind('-');
  if (dash == std::string_view::npos) return BadHostname(hostname, "it has no '-<ordinal>' suffix");
  std::string_view prefix = name.substr(0, dash);
  std::string_view digits = name.substr(dash + 1);
  if (prefix.empty()) return BadHostname(hostname, "the StatefulSet name before the '-' is empty");
  if (prefix.back() == '-') {
    return BadHostname(hostname, fmt::format("the StatefulSet name '{}' ends with '-'", prefix));
  }
  if (digits.empty()) return BadHostname(hostname, "nothing follows the last '-'");
  for (char c : digits) {
    if (c < '0' || c > '9') {
      return BadHostname(
          hostname, fmt::format("the ordinal '{}' after the last '-' is not a number", digits));
    }
  }

  // StatefulSets never pad ordinals; "mysql-02" would get server-id 102 but its peers
  // would look for "mysql-2" in DNS.
  if (digits.size() > 1 && digits[0] == '0') {
    return BadHostname(hostname, fmt::format("the ordinal '{}' has a leading zero", digits));
  }

  int64_t ordinal = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ordinal);
  if (ec == std::errc::result_out_of_range || end != digits.data() + digits.size()) {
    return BadHostname(hostname, fmt::format("the ordinal '{}' is too large", digits));
  }

  if (server_id_offset < 0) {
    return Error(StatusCode::kInvalidArgument, "node.server_id_offset {} is negative",
                 server_id_offset);
  }
  // Both are non-negative int64, so the sum is compared before it is formed.
  constexpr int64_t kMaxServerId = std::numeric_limits<uint32_t>::max();
  if (ordinal > kMaxServerId - server_id_offset || server_id_offset > kMaxServerId) {
    return BadHostname(hostname,
                       fmt::format("server-id = node.server_id_offset {} + ordinal {} does not fit "
                                   "in 32 bits (max {})",
                                   server_id_offset, ordinal, kMaxServerId));
  }
  int64_t server_id = server_id_offset + ordinal;
  if (server_id == 0) {
    // MySQL and MariaDB refuse to replicate with server-id 0.
    return BadHostname(hostname,
                       "server-id = node.server_id_offset 0 + ordinal 0 is 0, which "
                       "disables replication; use a positive node.server_id_offset");
  }

  Identity id;
  id.hostname = std::string(name);
  id.prefix = std::string(prefix);
  id.ordinal = ordinal;
  id.server_id = static_cast<uint32_t>(server_id);
  id.role = ordinal == 0 ? Role::kPrimary : Role::kReplica;
  return id;
}

}  // namespace replboot::conf
