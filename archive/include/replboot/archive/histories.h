// Histories of a cluster's binlog: a point-in-time restore starts a new one.
//
// After a restore to a point, the primary goes on from there with GTIDs whose sequence numbers
// the abandoned history already used ("0-100-51" exists in both), so the archive keeps each
// history's segments apart (binlogs/<history>/…) and a restore follows one branch only.
//
//   root       a cluster's first history, named by its cluster id; it has no record
//   branches   made by a point-in-time restore: "<UTC second>-<8 hex>", recorded in the store
//              as histories/<id>.json (parent, the GTID state restored to, the backup used,
//              when; MACed under the backup key) and in the restored database as the one row of
//              replboot.history, written as the first transaction of the new history
//
// A history's chain is its parent's up to the branch point, then its own segments. A backup
// belongs to the history that was current when it started: the newest history created before
// its start (root when none), since a restore replaces the cluster's data on every node.
// A user names a history with `replboot restore --history ID` (default: the newest) and sees
// them in `replboot backup list`.
//
// The archiver asks the primary which history it writes (kSelectHistorySql; HistoryFromAnswer):
// no table or no row is the root history.
#ifndef REPLBOOT_ARCHIVE_HISTORIES_H_
#define REPLBOOT_ARCHIVE_HISTORIES_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replboot/archive/keys.h"
#include "replboot/base/status.h"
#include "replboot/store/object_store.h"

namespace replboot::archive {

inline constexpr std::string_view kHistoriesPrefix = "histories/";
inline constexpr size_t kMaxHistoryIdChars = 64;
inline constexpr uint64_t kMaxHistoryRecordBytes = 64 << 10;

// 1..64 characters of [0-9a-z-], starting with a letter or digit: a cluster id (a UUID) or a
// branch id. Safe as one component of a key.
bool IsHistoryId(std::string_view text);
// The root history of `cluster_id` (the id itself; kInvalidArgument when it cannot be one).
Result<std::string> RootHistoryId(std::string_view cluster_id);
// A branch id for a restore at `when`: "20261207T104159Z-3fa2c1d9" (random suffix).
std::string NewHistoryId(std::chrono::system_clock::time_point when);
// "histories/<id>.json"
std::string HistoryKey(std::string_view id);

struct HistoryRecord {
  std::string id;
  std::string cluster_id;
  std::string parent;        // the history restored from
  std::string branch_state;  // the GTID binlog state restored to: the new history starts here
  std::string backup_id;     // the backup the restore started from
  std::string target;        // what was asked: "time 2026-12-06T10:41:59Z", "gtid 0-100-41", "latest"
  int64_t created_at_ms = 0;

  bool operator==(const HistoryRecord&) const = default;
};

std::string SerializeHistory(const HistoryRecord& record, const BackupKey& key);
// Strict; `id` is the one its key names (a record moved to another key fails).
Result<HistoryRecord> ParseHistory(std::string_view json, std::string_view id,
                                   const BackupKey& key);

// PutIfAbsent of the record (a history is written once); kInvalidArgument when one is there.
Status WriteHistory(store::ObjectStore& store, const BackupKey& key, const HistoryRecord& record);
// The branch records of `cluster_id`, oldest first (by created_at_ms, then id). A record that
// does not parse fails the listing, naming it: a restore must not guess its ancestry.
Result<std::vector<HistoryRecord>> ListHistories(store::ObjectStore& store, const BackupKey& key,
                                                 std::string_view cluster_id);

// The history that was current at `at_ms` (a backup's start): the newest record created at
// or before it, else the root.
std::string HistoryAt(const std::vector<HistoryRecord>& records, std::string_view root,
                      int64_t at_ms);
// `history` and its ancestors, newest first, each with the point where the child branched
// off it ("" for `history` itself): what a restore in `history` may use. kNotFound naming an
// unknown history; kCorruption for a loop.
struct Lineage {
  std::string history;
  std::string branch_state;  // the child's branch point in this history ("" = to its end)
};
Result<std::vector<Lineage>> LineageOf(const std::vector<HistoryRecord>& records,
                                       std::string_view root, std::string_view history);

// The primary's history, as the archiver reads it.
inline constexpr char kSelectHistorySql[] = "SELECT id FROM replboot.history";
// The server's error for a table that does not exist (ER_NO_SUCH_TABLE): the root history.
inline constexpr unsigned kNoSuchTableErrno = 1146;
// The answer of kSelectHistorySql (each row's first column) → the history id: no row is the
// root; one row must be a history id; more than one is kCorruption.
Result<std::string> HistoryFromAnswer(const std::vector<std::optional<std::string>>& ids,
                                      std::string_view cluster_id);
// Statements that make `record` the one row of replboot.history (the schema and table made
// when missing), for a session with backslash escapes on.
std::vector<std::string> HistoryTableStatements(const HistoryRecord& record);

}  // namespace replboot::archive

#endif  // REPLBOOT_ARCHIVE_HISTORIES_H_
