// GTID sets of either flavour, for comparing two nodes' histories: is a replica behind its
// primary, ahead of it, or has it applied transactions the primary never had (errant)?
//
// Both flavours become one shape: a source → a set of closed intervals of sequence numbers.
//   MySQL    a GTID set "uuid:1-5:7,uuid2:1-3" (@@gtid_executed): the source is the server
//            uuid, the intervals are as written.
//   MariaDB  a GTID list "d-s-n,..." (@@gtid_binlog_state, @@gtid_current_pos,
//            @@gtid_slave_pos): the source is (domain, server_id), and "d-s-n" stands for
//            every GTID d-s-m with m ≤ n, i.e. the interval [1, n]. MariaDB numbers a domain's
//            transactions in one sequence across servers, so two lists only compare like for
//            like: compare @@gtid_binlog_state with @@gtid_binlog_state (which keeps every
//            (domain, server_id) ever logged, also after PURGE BINARY LOGS), not with
//            @@gtid_current_pos (one entry per domain, the last server only).
//
// Why not MariaDB's own per-domain comparison: a transaction written on a replica with
// read_only off gets the replica's server_id and the next sequence number of the domain; the
// primary's later transactions overtake that number, and a per-domain comparison would call
// the replica "behind" while it holds a transaction the primary never had. Keyed by server_id
// it stays visible as 0-<replica>-n, which the primary lacks.
#ifndef REPLBOOT_REPLICATION_GTID_H_
#define REPLBOOT_REPLICATION_GTID_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "replboot/base/flavour.h"
#include "replboot/base/status.h"

namespace replboot::replication {

class GtidSet {
 public:
  // Whitespace (the server wraps long sets over lines) is ignored; "" is the empty set.
  // kInvalidArgument naming the element for anything else that is not a set of the flavour:
  // a non-number, a number over 2^63-1 (MySQL) or 2^64-1 (MariaDB), a domain over 2^32-1, an
  // interval whose end is below its start, a sequence number 0, a (domain, server) twice in a
  // MariaDB list. Inputs are bounded by what a server sends; nothing here allocates per digit.
  static Result<GtidSet> Parse(std::string_view text, Flavour flavour);

  Flavour flavour() const { return flavour_; }
  bool empty() const { return sources_.empty(); }
  // The normalised text: sources in order, adjacent intervals merged. A MariaDB set that is
  // a plain list prints as one ("0-1-100,0-2-5"); a difference that does not start at 1 prints
  // its intervals as "0-2-101..105", which the server does not read (messages only).
  std::string ToString() const;
  // Every GTID of `other` is in this set.
  bool Contains(const GtidSet& other) const;
  // The GTIDs of this set that `other` lacks (e.g. a replica's errant transactions:
  // replica.Minus(primary)).
  GtidSet Minus(const GtidSet& other) const;
  // Every GTID of either set (same flavour: a set of another flavour adds nothing). For
  // MariaDB, what a node executed is the union of @@gtid_binlog_state and @@gtid_current_pos:
  // a replica that does not log what it applies (log_slave_updates off) has an empty binlog
  // state, but its current position holds the primary's transactions it applied.
  GtidSet Union(const GtidSet& other) const;
  // The number of GTIDs in the set (MariaDB: the sum of n over its (domain, server)
  // entries). A measure of progress for choosing among nodes, not an exact transaction count
  // on MariaDB after a failover.
  uint64_t TransactionCount() const;

  bool operator==(const GtidSet&) const = default;

 private:
  using Interval = std::pair<uint64_t, uint64_t>;  // closed [first, last]
  explicit GtidSet(Flavour flavour) : flavour_(flavour) {}
  Flavour flavour_;
  // MySQL: the uuid in lower case; MariaDB: "domain-server".
  std::map<std::string, std::vector<Interval>> sources_;
};

// How `mine` stands to `theirs`: equal, behind (theirs holds all of mine and more), ahead
// (mine holds all of theirs and more) or diverged (each holds something the other lacks).
enum class GtidRelation { kEqual, kBehind, kAhead, kDiverged };
GtidRelation Relate(const GtidSet& mine, const GtidSet& theirs);
std::string_view GtidRelationName(GtidRelation relation);

}  // namespace replboot::replication

#endif  // REPLBOOT_REPLICATION_GTID_H_
