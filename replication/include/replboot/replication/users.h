// The accounts and the heartbeat schema replboot creates on the primary, idempotently, at
// every start of the primary (as root over the local socket). They are binlogged on purpose:
// replicas receive them, so any replica can serve backups and be promoted.
//
//   account                  host        grants
//   replication.user         '%'         REPLICATION SLAVE
//   backup.user (MariaDB)    'localhost' RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR,
//                                        SLAVE MONITOR
//   backup.user (MySQL 8)    'localhost' BACKUP_ADMIN, PROCESS, RELOAD, LOCK TABLES,
//                                        REPLICATION CLIENT
//                                        + SELECT ON performance_schema.log_status
//   cluster.app_user         '%'         ordinary DML/DDL (kAppPrivileges) on each of
//                                        cluster.app_databases (default `app`.*)
// (the backup grants per flavour are db::Dialect::BackupGrants)
//
// Why these:
// * mariabackup runs next to mysqld and connects through the socket, hence 'localhost'.
//   SLAVE MONITOR is for --slave-info (SHOW SLAVE STATUS) when the donor is a replica.
//   REPLICATION SLAVE ADMIN is NOT granted: it is only needed for --safe-slave-backup (which
//   stops the donor's SQL thread); replboot does not use that option, since InnoDB tables are
//   copied consistently under backup locks without stopping replication.
// * The app user has no SUPER, READ_ONLY ADMIN, CONNECTION ADMIN, GRANT OPTION, CREATE USER,
//   FILE, PROCESS, RELOAD or REPLICATION privilege, so read_only (and MySQL super_read_only)
//   refuses its writes on a replica. Its grants are per database, not on *.*: MariaDB has no
//   partial revokes, so "everything but the system schemas" cannot be said, and DML on *.*
//   would include the `mysql` grant tables (INSERT INTO mysql.global_priv = root at the next
//   restart). "*" in cluster.app_databases asks for *.* anyway.
//   The app user's grants converge to the setting at every primary start without a moment
//   without them: the wanted grants first, then the stale ones revoked (database-level grants
//   read from mysql.db; global ones by REVOKE ... ON *.*, which leaves the others alone).
//
// CREATE USER IF NOT EXISTS + ALTER USER … IDENTIFIED BY converge the password to the Secret
// on every start (a rotated Secret takes effect at the next primary start).
#ifndef REPLBOOT_REPLICATION_USERS_H_
#define REPLBOOT_REPLICATION_USERS_H_

#include <string>
#include <vector>

#include "replboot/base/status.h"
#include "replboot/db/client.h"
#include "replboot/replication/position.h"
#include "replboot/replication/statements.h"

namespace replboot::replication {

inline constexpr const char* kAppPrivileges =
    "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, LOCK "
    "TABLES, "
    "EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER, REFERENCES";

inline constexpr const char* kHeartbeatSchema = "replboot";
inline constexpr const char* kHeartbeatTable = "replboot.heartbeat";

struct Account {
  std::string user;
  std::string password;  // never logged
};

struct Accounts {
  Account replication;
  Account backup;
  Account app;  // skipped when user is empty
  // Where the app user's grants apply: each database is created if missing and granted as
  // `name`.*; "*" grants on *.* instead.
  std::vector<std::string> app_databases = {"app"};
};

// The statements, in order (heartbeat schema, then the accounts). Pure.
std::vector<Statement> UserStatements(Flavour flavour, const Accounts& accounts);

// REVOKEs for the app user's database-level grants no longer in app_databases, given the
// databases it holds grants on now (mysql.db.Db, escaped as stored). Pure.
std::vector<Statement> StaleAppGrantRevokes(const Accounts& accounts,
                                            const std::vector<std::string>& granted_databases);

// Runs UserStatements, then the StaleAppGrantRevokes of the grants it finds; an error names
// the failing statement in its redacted form.
Status EnsureUsers(db::Session& session, Flavour flavour, const Accounts& accounts);

}  // namespace replboot::replication

#endif  // REPLBOOT_REPLICATION_USERS_H_
