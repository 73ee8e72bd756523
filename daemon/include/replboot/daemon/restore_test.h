// The restore test: a backup proven restorable by restoring it, the way a user in trouble
// would, and starting a server on it. "Verified" (backup verify) says the objects are the
// ones written; only this says the backup comes back as a database.
//
//   scratch dir (leftover of a killed run removed first; refused inside, equal to or holding
//   the datadir; free space against the backup's size)
//     → download + verify + extract (RestoreBackup, as a replica: no promotion marker)
//     → --prepare
//     → throwaway server: socket only (--skip-networking), no binlog, no replication start,
//       no grant tables, a small buffer pool, everything inside the scratch dir
//     → table check: every table of every schema opened and checked (CHECK TABLE ... QUICK),
//       tables counted, rows estimated, the server's GTID position against the manifest's
//     → server killed, scratch dir removed (on every path; --keep-scratch keeps it)
//     → the result in the backup's MACed checks record (archive::WriteChecks)
//
// The live server is never touched: the throwaway one has its own datadir, socket, pid file,
// tmpdir and error log, none of the live server's paths (mysql.options that name files or
// directories are not passed on), and no network port.
#ifndef REPLBOOT_DAEMON_RESTORE_TEST_H_
#define REPLBOOT_DAEMON_RESTORE_TEST_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "replboot/archive/catalog.h"
#include "replboot/archive/manifest.h"
#include "replboot/base/flavour.h"
#include "replboot/base/status.h"
#include "replboot/daemon/backups.h"
#include "replboot/daemon/node_settings.h"
#include "replboot/db/client.h"

namespace replboot::daemon {

// The step a restore test failed at, named in its error and in the checks record.
enum class RestoreTestStep {
  kDownload,     // objects missing, of the wrong size, failing SHA-256 / GCM, a bad stream
  kPrepare,      // the backup tool's --prepare (and the local commit of the prepared files)
  kServerStart,  // the throwaway server did not start or accept a connection
  kTableCheck,   // a table that does not open or check, or a GTID position past the backup's
};
std::string_view RestoreTestStepName(RestoreTestStep step);  // "download/verify", ...

// Inside the scratch dir.
inline constexpr char kScratchMarker[] = "replboot-restore-test.json";
inline constexpr std::string_view kScratchSuffix = ".replboot-restore-test";

// The scratch dir for `datadir`: `configured` (archive.scratch_dir) or
// <datadir>.replboot-restore-test. kInvalidArgument when it is relative, or equal to,
// inside or above the datadir or its staging and old dirs (the scratch dir is removed whole),
// compared as written and with symlinks resolved.
Result<std::string> ScratchDirFor(const std::string& datadir, const std::string& configured);

// Free space for a restore test of a backup whose stream is `logical_bytes`: the stream
// unpacked (× 1.05, as a clone's pre-flight) plus room for what the throwaway server writes
// (redo log, temporary tablespace, error log). kNoSpace naming the need, the free space and
// the shortfall.
inline constexpr uint64_t kServerSlackBytes = 256ull << 20;
Status CheckScratchSpace(const std::string& scratch_dir, uint64_t free_bytes,
                         uint64_t logical_bytes);

// The [mysql.options] the throwaway server takes too: those a datadir may need to open
// (innodb_page_size, lower_case_table_names, encryption plugins and their key files), never
// one that names a file or directory the server would write (logs, tmpdir, InnoDB's
// directories), nor any of replication, the binlog, the network or init SQL. Pure.
std::map<std::string, std::string> ScratchServerOptions(
    const std::map<std::string, std::string>& options);

// The throwaway server's option file (its [mysqld] group). Pure.
struct ScratchServerPaths {
  std::string datadir;
  std::string socket;
  std::string pid_file;
  std::string error_log;
  std::string tmpdir;
};
// Whether the throwaway server reads its grant tables. A restore test skips them (the backup's
// accounts need not be known where it runs); the replay of a point-in-time restore reads them,
// because the binlog it applies holds account statements (CREATE USER, GRANT: replboot's own
// accounts on a new history's first start) that a server without grant tables refuses (1290).
enum class ScratchGrants { kSkip, kRead };
Result<std::string> ScratchServerConfig(Flavour flavour, const ScratchServerPaths& paths,
                                        const std::map<std::string, std::string>& options,
                                        ScratchGrants grants = ScratchGrants::kSkip);

// The table check, on a session to the test server: every base table of every schema
// (information_schema and performance_schema are views of the server itself) through CHECK
// TABLE ... QUICK (opened, its indexes and rows read), then the server's GTID position.
// kCorruption naming the table and the server's words for one that fails; the session's error
// for a statement that fails; kCancelled on `stop` between tables.
struct RestoredTables {
  uint64_t schemas = 0;
  uint64_t tables = 0;
  uint64_t approximate_rows = 0;  // TABLE_ROWS summed
  std::string gtid;               // @@gtid_current_pos (MariaDB) / @@gtid_executed (MySQL)
};
Result<RestoredTables> CheckRestoredTables(db::Session& session, Flavour flavour,
                                           const std::stop_token& stop);

// How the restored server's position stands to the manifest's: "equal", "behind", or "not
// comparable" (either empty). kCorruption when it is ahead of or beside it: the tables hold
// transactions the manifest does not name, so a server restored from it would take them again
// from its source.
Result<std::string> CompareRestoredGtid(const std::string& server, const std::string& manifest,
                                        Flavour flavour);

struct RestoreTestOptions {
  std::string scratch_dir;    // "" = ScratchDirFor(mysql.datadir, archive.scratch_dir)
  bool keep_scratch = false;  // leave it (the server stopped cleanly) for a look
  bool record = true;         // write the result into the backup's checks record
  std::stop_token stop;
  // How long the throwaway server may take to accept a connection; 0 = mysql.startup_timeout.
  std::chrono::seconds startup_timeout{0};
};

struct RestoreTestReport {
  std::string backup_id;
  bool ok = false;
  std::optional<RestoreTestStep> failed_step;  // when !ok
  std::string error;                           // "<step>: <why>" when !ok
  int64_t tested_at_ms = 0;
  double seconds = 0;          // the whole test
  double restore_seconds = 0;  // download, verify, extract, prepare
  double start_seconds = 0;    // the server's start
  double check_seconds = 0;
  uint64_t schemas = 0;
  uint64_t tables = 0;  // tables checked
  // information_schema.TABLES.TABLE_ROWS summed: exact for MyISAM and Aria, InnoDB's estimate.
  uint64_t approximate_rows = 0;
  std::string server_gtid;  // @@gtid_current_pos (MariaDB) / @@gtid_executed (MySQL)
  // "equal", "behind" (a primary's backup: its position is in its binlog, which a backup
  // does not hold, so the restored tables know less), "not comparable" (either is empty).
  std::string gtid_check;
  std::string scratch_dir;
  bool scratch_kept = false;
  bool recorded = false;  // the checks record was written
};

// Runs the test on `manifest`. The report says how it went (a failure of the backup is a
// report with ok false, recorded like a success); an error is returned only when the test
// could not be run at all, which says nothing about the backup and records nothing: the
// scratch dir refused or in use by another test, too little space (kNoSpace, also when the
// disk fills up during the test), a stop request (kCancelled), another flavour, a store that
// does not answer (kUnavailable, kTimeout while downloading).
Result<RestoreTestReport> RestoreTestBackup(const NodeSettings& settings, Archive& archive,
                                            const archive::Manifest& manifest,
                                            const RestoreTestOptions& options);

// Which backup a scheduled restore test takes now, among `entries` (archive::ListBackups):
// nothing while a complete backup of `cluster` ("" = of any) passed a restore test within
// `interval` (the store was proven restorable lately); else the newest complete backup whose
// last restore test (passed or failed) is older than `interval`, so a backup that just failed
// is not retried at once while an older one may still be proven. Pure.
std::optional<std::string> PickBackupDueForRestoreTest(
    const std::vector<archive::BackupEntry>& entries, const std::string& cluster,
    std::chrono::seconds interval, int64_t now_ms);
// The same over the store's listing, now.
Result<std::optional<std::string>> BackupDueForRestoreTest(Archive& archive,
                                                           const std::string& cluster,
                                                           std::chrono::seconds interval);

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_RESTORE_TEST_H_
