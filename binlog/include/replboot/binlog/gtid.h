// MariaDB GTIDs as text: one GTID ("domain-server_id-sequence"), a position (one GTID per
// domain, as @@gtid_current_pos and a restore target) and a state (the last sequence number of
// every (domain, server_id), as @@gtid_binlog_state and a segment's start and end). Shared by
// the cutter, the store side of the archive, the restore and the archiver.
//
// Every number is parsed strictly: decimal digits only, no sign, no leading zero but "0", in
// range; errors are kInvalidArgument naming the entry (printable, cut at 64 bytes).
#ifndef REPLBOOT_BINLOG_GTID_H_
#define REPLBOOT_BINLOG_GTID_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "replboot/base/status.h"

namespace replboot::binlog {

// A decimal number of at most `max`: digits only, no sign, no leading zero unless it is "0".
// The number rule of GTIDs and of the archive's segment keys.
std::optional<uint64_t> ParseDecimal(std::string_view text, uint64_t max);

struct Gtid {
  uint32_t domain = 0;
  uint32_t server_id = 0;
  uint64_t sequence = 0;
  std::string ToString() const;
  bool operator==(const Gtid&) const = default;
};
// Strict: three decimal numbers joined by '-'.
Result<Gtid> ParseGtid(std::string_view text);

// Lists longer than this are refused (a hostile key or file, not a server's state).
inline constexpr size_t kMaxPositionEntries = 4096;

// Per domain, the GTID with the highest sequence number: what the chain check and a restore
// compare. Made from a @@gtid_binlog_state or a @@gtid_current_pos alike.
using GtidPosition = std::map<uint32_t, Gtid>;
// A comma-separated GTID list ("" is the empty position), whitespace around entries ignored.
Result<GtidPosition> ParsePosition(std::string_view text);
// "0-100-41,1-101-7", domains in order; "" when empty.
std::string PositionToString(const GtidPosition& position);
// The sum of the sequence numbers (saturating): grows by at least one with every transaction
// of a chain, so it orders a history's segments.
uint64_t PositionOrdinal(const GtidPosition& position);
// Every domain of `b` is in `a` at a sequence number at least b's.
bool PositionCovers(const GtidPosition& a, const GtidPosition& b);
// `position` after the transaction `gtid`.
void Advance(GtidPosition& position, const Gtid& gtid);

// A position in the @@gtid_binlog_state form: the last sequence number of every
// (domain, server_id) pair. Printed in (domain, server_id) order.
class GtidState {
 public:
  using Entries = std::map<std::pair<uint32_t, uint32_t>, uint64_t>;
  // "" is the empty state. kInvalidArgument naming the entry for anything but
  // "d-s-n[,d-s-n...]" with strict numbers in range (sequence above 0), each (domain, server)
  // once, at most kMaxPositionEntries entries.
  static Result<GtidState> Parse(std::string_view text);
  std::string ToString() const;
  // One GTID per domain, the highest sequence number (what @slave_connect_state takes): the
  // server refuses a domain named twice.
  std::string ConnectPosition() const;
  GtidPosition Position() const;
  void Record(uint32_t domain, uint32_t server_id, uint64_t seq);
  void Record(const Gtid& gtid) { Record(gtid.domain, gtid.server_id, gtid.sequence); }
  // This exact (domain, server) has logged `seq` or a later one.
  bool Holds(uint32_t domain, uint32_t server_id, uint64_t seq) const;
  bool empty() const { return last_.empty(); }
  const Entries& entries() const { return last_; }
  bool operator==(const GtidState&) const = default;

 private:
  Entries last_;
};

}  // namespace replboot::binlog

#endif  // REPLBOOT_BINLOG_GTID_H_
