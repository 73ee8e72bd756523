#include "replboot/replication/statements.h"

#include <cctype>

#include "replboot/db/client.h"

namespace replboot::replication {

Statement Plain(std::string sql) {
  Statement s;
  s.redacted = sql;
  s.sql = std::move(sql);
  return s;
}

Result<int> ParseServerVersion(const std::string& version) {
  int parts[3] = {0, 0, 0};
  size_t i = 0;
  for (int p = 0; p < 3; ++p) {
    size_t start = i;
    while (i < version.size() && std::isdigit(static_cast<unsigned char>(version[i])) &&
           i - start < 4) {
      parts[p] = parts[p] * 10 + (version[i] - '0');
      ++i;
    }
    if (i == start)
      return Error(StatusCode::kInvalidArgument, "server version '{}' is not major.minor.patch",
                   version);
    if (p < 2) {
      if (i >= version.size() || version[i] != '.') {
        return Error(StatusCode::kInvalidArgument, "server version '{}' is not major.minor.patch",
                     version);
      }
      ++i;
    }
  }
  return parts[0] * 10000 + parts[1] * 100 + parts[2];
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
  if (server.flavour == Flavour::kMariaDB) {
    OptionList options;
    options.Add("MASTER_HOST", db::QuoteLiteral(source.host));
    options.Add("MASTER_PORT", std::to_string(source.port));
    options.Add("MASTER_USER", db::QuoteLiteral(source.user));
    options.AddSecret("MASTER_PASSWORD", source.password);
    if (gtid) {
      out.push_back(Plain("SET GLOBAL gtid_slave_pos=" + db::QuoteLiteral(position.gtid)));
      options.Add("MASTER_USE_GTID", "slave_pos");
    } else {
      options.Add("MASTER_LOG_FILE", db::QuoteLiteral(position.log_file));
      options.Add("MASTER_LOG_POS", std::to_string(position.log_pos));
      options.Add("MASTER_USE_GTID", "no");
    }
    options.Add("MASTER_CONNECT_RETRY", std::to_string(source.connect_retry));
    if (source.tls) options.Add("MASTER_SSL", "1");
    out.push_back(options.Render("CHANGE MASTER TO"));
    out.push_back(Plain("START SLAVE"));
    return out;
  }

  // MySQL 8.
  const bool new_syntax = server.version == 0 || server.version >= 80023;
  const std::string p = new_syntax ? "SOURCE_" : "MASTER_";
  if (gtid) {
    auto executed = NormalizeGtid(server.gtid_executed, Flavour::kMySQL);
    if (!executed) return tl::unexpected(executed.error().WithContext("replica's gtid_executed"));
    // gtid_purged can only be set while gtid_executed is empty; a replica restored from a clone
    // may already hold the set (PXB restores mysql.gtid_executed), then nothing is to be done.
    if (*executed != position.gtid) {
      if (!executed->empty()) {
        out.push_back(
            Plain(server.version >= 80400 ? "RESET BINARY LOGS AND GTIDS" : "RESET MASTER"));
      }
      out.push_back(Plain("SET GLOBAL gtid_purged=" + db::QuoteLiteral(position.gtid)));
    }
  }
  OptionList options;
  options.Add(p + "HOST", db::QuoteLiteral(source.host));
  options.Add(p + "PORT", std::to_string(source.port));
  options.Add(p + "USER", db::QuoteLiteral(source.user));
  options.AddSecret(p + "PASSWORD", source.password);
  if (gtid) {
    options.Add(p + "AUTO_POSITION", "1");
  } else {
    options.Add(p + "LOG_FILE", db::QuoteLiteral(position.log_file));
    options.Add(p + "LOG_POS", std::to_string(position.log_pos));
  }
  // caching_sha2_password over a connection without TLS needs the source's RSA key.
  options.Add(new_syntax ? "GET_SOURCE_PUBLIC_KEY" : "GET_MASTER_PUBLIC_KEY", "1");
  options.Add(p + "CONNECT_RETRY", std::to_string(source.connect_retry));
  if (source.tls) options.Add(p + "SSL", "1");
  out.push_back(options.Render(new_syntax ? "CHANGE REPLICATION SOURCE TO" : "CHANGE MASTER TO"));
  out.push_back(Plain(new_syntax ? "START REPLICA" : "START SLAVE"));
  return out;
}

}  // namespace replboot::replication
