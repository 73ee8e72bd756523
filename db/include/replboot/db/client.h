// db/: a small SQL client seam over MariaDB Connector/C (libmariadb), which talks to
// MariaDB and MySQL 8 servers alike.
//
// Why not mysql-connector-c++: Debian 12's libmysqlcppconn-dev depends on Boost 1.74,
// which cannot be installed next to the Boost 1.81 that Asio/Beast need here.
//
// Calls block: run them on a thread pool, never on the Asio I/O thread. A Session is used by
// one thread at a time (libmariadb connections are not thread-safe); Connect() may be called
// from any thread.
// Passwords are passed in memory only (never argv, environment or logs).
#ifndef REPLBOOT_DB_CLIENT_H_
#define REPLBOOT_DB_CLIENT_H_

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "replboot/base/status.h"

namespace replboot::db {

// TLS of a TCP connection. The unix socket never leaves the host: it ignores these.
struct TlsOptions {
  // TLS 1.2 or 1.3 is required: a server without it is an error (with a CA, before the login;
  // without one, right after it, which is all Connector/C 3.3 allows).
  bool enabled = false;
  // PEM file of the CA the server's certificate must chain to; the certificate must also name
  // the host as ConnectOptions::host gives it (subjectAltName or CN), since peers are addressed
  // by their DNS names. Empty: encrypted but unverified (anyone on the path can pose as the
  // server), and the password-sending plugins are then refused (see Connect).
  std::string ca;
  std::string cert;  // client certificate and key, for accounts that REQUIRE X509 (optional)
  std::string key;

  bool Verified() const { return enabled && !ca.empty(); }
};

struct ConnectOptions {
  std::string host;  // empty with a socket: connect through the socket
  int port = 3306;
  std::string socket;  // unix socket path, preferred when set
  std::string user;
  std::string password;
  std::chrono::seconds connect_timeout{5};
  std::chrono::seconds read_timeout{30};
  TlsOptions tls;  // TCP only
};

// The client authentication plugins a connection accepts (MARIADB_OPT_RESTRICTED_AUTH), as a
// comma-separated list: a server (or whoever answers in its name) that asks for another one,
// in its greeting or in an AuthSwitchRequest, gets an error and no bytes of the password.
// Never mysql_clear_password or dialog (PAM), which send the password as it is, nor
// mysql_old_password (broken hash).
//   mysql_native_password, client_ed25519: challenge-response; the password never leaves.
//   caching_sha2_password, sha256_password: their full path sends the password itself, over TLS
//     in clear, else RSA-encrypted with a key the server hands over unauthenticated. So only
//     where the other end is known: the unix socket (mysqld's own, on this host) or TLS with a
//     verified certificate. A MySQL 8 account (caching_sha2 by default) reached over TCP thus
//     needs a verified TLS connection.
std::string AllowedAuthPlugins(const ConnectOptions& options);

// One result row, read by column name (column order differs between server versions,
// e.g. SHOW SLAVE STATUS). NULL is std::nullopt.
class Row {
 public:
  Row() = default;
  Row(std::shared_ptr<const std::vector<std::string>> columns,
      std::vector<std::optional<std::string>> values);
  // The value of `column`; nullopt when NULL or when no such column exists.
  std::optional<std::string> Get(const std::string& column) const;
  bool Has(const std::string& column) const;
  const std::optional<std::string>& at(size_t i) const { return values_.at(i); }
  size_t size() const { return values_.size(); }

 private:
  std::shared_ptr<const std::vector<std::string>> columns_;
  std::vector<std::optional<std::string>> values_;
};

// The seam unit tests fake. Errors carry the server's error number and text
// (e.g. "server unix:/run/mysqld.sock: error 1290 (HY000): The MariaDB server is running
// with the --read-only option"; never the statement text, which may hold a password).
// Codes: kUnavailable when the connection itself failed (client CR_* errors, server
// shutting down, too many connections), kPermissionDenied for access-denied errors and
// 1290 (read-only refusal), kInternal for any other server error.
class Session {
 public:
  virtual ~Session() = default;
  virtual Status Execute(const std::string& sql) = 0;
  virtual Result<std::vector<Row>> Query(const std::string& sql) = 0;
  // The server error number of the last failure (0 when none), for callers that branch on it.
  virtual unsigned LastErrorNumber() const = 0;
};

// Opens a real connection (libmariadb). kUnavailable when the server does not answer or TLS
// fails (no TLS on the server, a certificate the CA did not sign or that names another host);
// kPermissionDenied when the server wants an authentication plugin AllowedAuthPlugins refuses.
Result<std::unique_ptr<Session>> Connect(const ConnectOptions& options);

// Quotes a string literal for SQL ('...' with backslash and quote escaped) for the few
// statements that cannot take parameters (CHANGE MASTER, CREATE USER). Right only where
// backslashes escape: every Session from Connect() runs kBackslashEscapesSql first, and SQL
// read by mysqld itself (an --init-file) must start with it.
std::string QuoteLiteral(const std::string& value);

// Removes NO_BACKSLASH_ESCAPES (and only it) from the session's sql_mode, whatever else the
// operator set (mysql.options.sql_mode); one statement, no trailing ';'.
inline constexpr char kBackslashEscapesSql[] =
    "SET SESSION sql_mode = TRIM(BOTH ',' FROM REPLACE(CONCAT(',', @@SESSION.sql_mode, ','), "
    "',NO_BACKSLASH_ESCAPES,', ','))";
// Quotes an identifier (`...` with backticks doubled) for a name that comes from the config.
std::string QuoteIdentifier(const std::string& name);

}  // namespace replboot::db

#endif  // REPLBOOT_DB_CLIENT_H_
