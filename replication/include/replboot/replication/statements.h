// The SQL that points a fresh replica at the primary, generated from a parsed Position (pure).
//
// MariaDB, GTID (preferred):
//   SET GLOBAL gtid_slave_pos='…';
//   CHANGE MASTER TO MASTER_HOST=…, MASTER_PORT=…, MASTER_USER=…, MASTER_PASSWORD=…,
//     MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=…[, MASTER_SSL=1[, MASTER_SSL_CA='…',
//     MASTER_SSL_VERIFY_SERVER_CERT=1][, MASTER_SSL_CERT='…', MASTER_SSL_KEY='…']];
//   START SLAVE;
// MariaDB, file/pos (no GTID in the clone): MASTER_LOG_FILE/MASTER_LOG_POS, MASTER_USE_GTID=no.
// MySQL 8 (≥ 8.0.23 syntax; older 8.0 gets CHANGE MASTER/START SLAVE; see db/dialect.h):
//   [RESET MASTER | RESET BINARY LOGS AND GTIDS (8.4);]   only when gtid_executed is not empty
//   SET GLOBAL gtid_purged='…';                           and differs from the clone's set
//   CHANGE REPLICATION SOURCE TO SOURCE_HOST=…, …, SOURCE_AUTO_POSITION=1,
//     GET_SOURCE_PUBLIC_KEY=1, SOURCE_CONNECT_RETRY=…[, SOURCE_SSL=1[, SOURCE_SSL_CA='…',
//     SOURCE_SSL_VERIFY_SERVER_CERT=1][, …]];                (older 8.0: the MASTER_ names)
//   START REPLICA;
//
// Every Statement has a `redacted` rendering with the password replaced: log that one only.
#ifndef REPLBOOT_REPLICATION_STATEMENTS_H_
#define REPLBOOT_REPLICATION_STATEMENTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "replboot/base/status.h"
#include "replboot/db/dialect.h"
#include "replboot/replication/position.h"

namespace replboot::replication {

struct Statement {
  std::string sql;       // what is executed; may hold a password
  std::string redacted;  // for logs, errors and the intent record
};

// What the replica's server is: its dialect (flavour and version) and, for MySQL, its GTIDs.
struct ServerInfo {
  db::Dialect dialect{Flavour::kMariaDB, 0};
  std::string gtid_executed;  // MySQL: @@gtid_executed of the replica now (normalised)
};

struct SourceOptions {
  std::string host;  // "<prefix>-0.<service>", e.g. "mysql-0.mysql"
  int port = 3306;
  std::string user;
  std::string password;  // never logged: see Statement::redacted
  int connect_retry = 5;
  // MASTER_SSL=1 / SOURCE_SSL=1. With tls_ca also *_SSL_CA and *_SSL_VERIFY_SERVER_CERT=1: the
  // IO thread checks the chain and that the certificate names `host`. Paths are read by
  // mysqld. Ignored unless tls.
  bool tls = false;
  std::string tls_ca;
  std::string tls_cert;  // *_SSL_CERT / *_SSL_KEY when set
  std::string tls_key;
};

// The statements, in order, that make a replica replicate from `position` on `source`.
// kInvalidArgument when the position has neither GTID nor file/pos, or the options are empty.
Result<std::vector<Statement>> ReplicaStatements(const Position& position,
                                                 const SourceOptions& source,
                                                 const ServerInfo& server);

// A statement with no secret: sql and redacted are the same text.
Statement Plain(std::string sql);

}  // namespace replboot::replication

#endif  // REPLBOOT_REPLICATION_STATEMENTS_H_
