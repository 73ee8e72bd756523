#include "replboot/replication/statements.h"

#include "replboot/db/client.h"

namespace replboot::replication {

Statement Plain(std::string sql) {
  Statement s;
  s.redacted = sql;
  s.sql = std::move(sql);
  return s;
}

namespace {

constexpr const char* kRedacted = "'<redacted>'";

// Builds "PREFIX a=1, b=2" twice: once with the password and once without.
class OptionList {
 public:
  void Add(const std::string& key, const std::string& value) {
    items_.push_back({key + "=" + value, {}});
  }
  void AddSecret(const std::string& key, const std::string& value) {
    items_.push_back({key + "=" + db::QuoteLiteral(value), key + "=" + kRedacted});
  }
  Statement Render(const std::string& prefix) const {
    Statement s;
    s.sql = prefix;
    s.redacted = prefix;
    for (size_t i = 0; i < items_.size(); ++i) {
      const char* sep = i == 0 ? " " : ", ";
      s.sql += sep + items_[i].first;
      s.redacted += sep + (items_[i].second.empty() ? items_[i].first : items_[i].second);
    }
    return s;
  }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

}  // namespace

Result<std::vector<Statement>> ReplicaStatements(const Position& position,
                                                 const SourceOptions& source,
                                                 const ServerInfo& server) {
  if (source.host.empty() || source.user.empty()) {
    return Error(StatusCode::kInvalidArgument,
                 "replication source needs a host and a user (host '{}', user '{}')", source.host,
                 source.user);
  }
  if (source.port <= 0 || source.port > 65535) {
    return Error(StatusCode::kInvalidArgument, "replication source port {} is out of range",
                 source.port);
  }
  if (!position.HasGtid() && !position.HasFilePos()) {
    return Error(StatusCode::kInvalidArgument,
                 "position from '{}' has neither a GTID nor a binlog file and position",
                 position.origin);
  }
  std::vector<Statement> out;
  const bool gtid = position.HasGtid();
  const db::Dialect& d = server.dialect;
  OptionList options;
  options.Add(d.SourceOption("HOST"), db::QuoteLiteral(source.host));
  options.Add(d.SourceOption("PORT"), std::to_string(source.port));
  options.Add(d.SourceOption("USER"), db::QuoteLiteral(source.user));
  options.AddSecret(d.SourceOption("PASSWORD"), source.password);
  if (d.flavour() == Flavour::kMariaDB) {
    if (gtid) {
      out.push_back(Plain(
          fmt::format("SET GLOBAL {}={}", d.GtidStartVariable(), db::QuoteLiteral(position.gtid))));
      options.Add("MASTER_USE_GTID", "slave_pos");
    } else {
      options.Add("MASTER_LOG_FILE", db::QuoteLiteral(position.log_file));
      options.Add("MASTER_LOG_POS", std::to_string(position.log_pos));
      options.Add("MASTER_USE_GTID", "no");
    }
  } else {
    if (gtid) {
      auto executed = NormalizeGtid(server.gtid_executed, Flavour::kMySQL);
      if (!executed) return tl::unexpected(executed.error().WithContext("replica's gtid_executed"));
      // gtid_purged can only be set while gtid_executed is empty; a replica restored from a
      // clone may already hold the set (PXB restores mysql.gtid_executed), then nothing is to
      // be done.
      if (*executed != position.gtid) {
        if (!executed->empty()) out.push_back(Plain(d.ResetBinaryLogsAndGtids()));
        out.push_back(Plain(fmt::format("SET GLOBAL {}={}", d.GtidStartVariable(),
                                        db::QuoteLiteral(position.gtid))));
      }
      options.Add(d.SourceOption("AUTO_POSITION"), "1");
    } else {
      options.Add(d.SourceOption("LOG_FILE"), db::QuoteLiteral(position.log_file));
      options.Add(d.SourceOption("LOG_POS"), std::to_string(position.log_pos));
    }
    // caching_sha2_password over a connection without TLS needs the source's RSA key.
    options.Add(d.GetSourcePublicKeyOption(), "1");
  }
  options.Add(d.SourceOption("CONNECT_RETRY"), std::to_string(source.connect_retry));
  if (source.tls) {
    options.Add(d.SourceOption("SSL"), "1");
    if (!source.tls_ca.empty()) {
      options.Add(d.SourceOption("SSL_CA"), db::QuoteLiteral(source.tls_ca));
      // Without it a CA only adds a chain nobody checks: any certificate would do.
      options.Add(d.SourceOption("SSL_VERIFY_SERVER_CERT"), "1");
    }
    if (!source.tls_cert.empty()) {
      options.Add(d.SourceOption("SSL_CERT"), db::QuoteLiteral(source.tls_cert));
    }
    if (!source.tls_key.empty()) {
      options.Add(d.SourceOption("SSL_KEY"), db::QuoteLiteral(source.tls_key));
    }
  }
  out.push_back(options.Render(d.ChangeSourceTo()));
  out.push_back(Plain(d.StartReplica()));
  return out;
}

}  // namespace replboot::replication
