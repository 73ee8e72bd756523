#include "replboot/replication/users.h"

#include <openssl/evp.h>

#include <algorithm>
#include <set>

#include "replboot/base/log.h"
#include "replboot/db/dialect.h"

namespace replboot::replication {


namespace {

// A database in a GRANT: '_' and '%' are wildcards there (`my_app`.* would also cover
// `myXapp`), so they are escaped to mean themselves.
// As stored in mysql.db.Db.
std::string EscapedGrantDatabase(const std::string& database) {
  std::string literal;
  for (char c : database) {
    if (c == '_' || c == '%') literal.push_back('\\');
    literal.push_back(c);
  }
  return literal;
}

std::string GrantDatabase(const std::string& database) {
  return db::QuoteIdentifier(EscapedGrantDatabase(database));
}

bool GrantsEverything(const Accounts& accounts) {
  return std::find(accounts.app_databases.begin(), accounts.app_databases.end(), "*") !=
         accounts.app_databases.end();
}

std::string Name(const std::string& user, const std::string& host) {
  return db::QuoteLiteral(user) + "@" + db::QuoteLiteral(host);
}

// MariaDB writes CREATE/ALTER USER ... IDENTIFIED BY 'clear text' verbatim into the binary
// log, where every replica (and anyone holding REPLICATION SLAVE) can read it. So on MariaDB
// the password goes in as its mysql_native_password hash, '*' + HEX(SHA1(SHA1(password))),
// which is what the server stores anyway and which does not let anyone log in by itself.
// MySQL 8 already logs the hashed form (IDENTIFIED WITH ... AS '<hash>').
std::string NativePasswordHash(const std::string& password) {
  unsigned char first[EVP_MAX_MD_SIZE];
  unsigned char second[EVP_MAX_MD_SIZE];
  unsigned int first_len = 0;
  unsigned int second_len = 0;
  EVP_Digest(password.data(), password.size(), first, &first_len, EVP_sha1(), nullptr);
  EVP_Digest(first, first_len, second, &second_len, EVP_sha1(), nullptr);
  std::string hex = "*";
  for (unsigned int i = 0; i < second_len; ++i) hex += fmt::format("{:02X}", second[i]);
  return hex;
}

void AddAccount(std::vector<Statement>* out, Flavour flavour, const Account& account,
                const std::string& host, const std::vector<std::string>& grants) {
  std::string name = Name(account.user, host);
  std::string identified =
      flavour == Flavour::kMariaDB
          ? "IDENTIFIED BY PASSWORD " + db::QuoteLiteral(NativePasswordHash(account.password))
          : "IDENTIFIED BY " + db::QuoteLiteral(account.password);
  Statement create;
  create.sql = "CREATE USER IF NOT EXISTS " + name + " " + identified;
  create.redacted = "CREATE USER IF NOT EXISTS " + name + " IDENTIFIED BY '<redacted>'";
  out->push_back(std::move(create));
  Statement alter;
  alter.sql = "ALTER USER " + name + " " + identified;
  alter.redacted = "ALTER USER " + name + " IDENTIFIED BY '<redacted>'";
  out->push_back(std::move(alter));
  for (const std::string& grant : grants) out->push_back(Plain("GRANT " + grant + " TO " + name));
}

}  // namespace

std::vector<Statement> UserStatements(Flavour flavour, const Accounts& accounts) {
  std::vector<Statement> out;
  out.push_back(Plain(fmt::format("CREATE DATABASE IF NOT EXISTS {}", kHeartbeatSchema)));
  out.push_back(
      Plain(fmt::format("CREATE TABLE IF NOT EXISTS {} (id TINYINT UNSIGNED NOT NULL PRIMARY KEY, "
                        "ts TIMESTAMP(6) NOT NULL, "
                        "server_id INT UNSIGNED NOT NULL) ENGINE=InnoDB",
                        kHeartbeatTable)));
  AddAccount(&out, flavour, accounts.replication, "%", {"REPLICATION SLAVE ON *.*"});
  // The grants are the same in every version of a flavour.
  AddAccount(&out, flavour, accounts.backup, "localhost", db::Dialect(flavour, 0).BackupGrants());
  if (!accounts.app.user.empty()) {
    std::vector<std::string> grants;
    if (GrantsEverything(accounts)) {
      grants.push_back(std::string(kAppPrivileges) + " ON *.*");
    } else {
      for (const std::string& database : accounts.app_databases) {
        out.push_back(Plain("CREATE DATABASE IF NOT EXISTS " + db::QuoteIdentifier(database)));
        grants.push_back(fmt::format("{} ON {}.*", kAppPrivileges, GrantDatabase(database)));
      }
    }
    AddAccount(&out, flavour, accounts.app, "%", grants);
    // Without "*", privileges at the global level are stale (an earlier *.* grant): REVOKE
    // ... ON *.* takes only those, the database-level grants above stay.
    if (!GrantsEverything(accounts)) {
      out.push_back(
          Plain(fmt::format("REVOKE ALL PRIVILEGES ON *.* FROM {}", Name(accounts.app.user, "%"))));
    }
  }
  return out;
}

std::vector<Statement> StaleAppGrantRevokes(const Accounts& accounts,
                                            const std::vector<std::string>& granted_databases) {
  std::vector<Statement> out;
  if (accounts.app.user.empty()) return out;
  const bool everything = GrantsEverything(accounts);
  std::set<std::string> wanted;
  for (const std::string& database : accounts.app_databases)
    wanted.insert(EscapedGrantDatabase(database));
  for (const std::string& stored : granted_databases) {
    if (!everything && wanted.contains(stored)) continue;
    out.push_back(Plain(fmt::format("REVOKE ALL PRIVILEGES ON {}.* FROM {}",
                                    db::QuoteIdentifier(stored), Name(accounts.app.user, "%"))));
  }
  return out;
}

Status EnsureUsers(db::Session& session, Flavour flavour, const Accounts& accounts) {
  auto logger = log::Get("replication");
  auto execute = [&](const std::vector<Statement>& statements) {
    for (const Statement& s : statements) {
      Status status = session.Execute(s.sql);
      if (!status.ok()) return status.WithContext(fmt::format("ensure users: {}", s.redacted));
    }
    return Status::Ok();
  };
  REPLBOOT_RETURN_STATUS_IF_ERROR(execute(UserStatements(flavour, accounts)));
  if (!accounts.app.user.empty()) {
    // Granted first, revoked after: the app user never goes without its grants.
    auto rows = session.Query(fmt::format("SELECT Db FROM mysql.db WHERE User = {} AND Host = '%'",
                                          db::QuoteLiteral(accounts.app.user)));
    if (!rows) return rows.error().WithContext("ensure users: reading the app user's grants");
    std::vector<std::string> granted;
    for (const db::Row& row : *rows) granted.push_back(row.Get("Db").value_or(""));
    REPLBOOT_RETURN_STATUS_IF_ERROR(execute(StaleAppGrantRevokes(accounts, granted)));
  }
  logger->info("event=users_ensured replication_user={} backup_user={} app_user={}",
               log::Quote(accounts.replication.user), log::Quote(accounts.backup.user),
               log::Quote(accounts.app.user.empty() ? "-" : accounts.app.user));
  return Status::Ok();
}

}  // namespace replboot::replication
