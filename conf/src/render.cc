#include "replboot/conf/render.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <string_view>

#include "replboot/base/files.h"
#include "replboot/base/option_file.h"
#include "replboot/base/process.h"

namespace replboot::conf {
namespace {

// Every value goes through option_file::Line: quoted and escaped, so '#', quotes,
// backslashes and surrounding blanks in a path or an option reach mysqld unchanged.
Status Line(std::string& out, std::string_view name, std::string_view value) {
  auto line = option_file::Line(name, value);
  if (!line) return line.error();
  out += *line;
  return Status::Ok();
}

}  // namespace

Result<std::string> RenderMysqldConfig(const Config& config, const Identity& identity,
                                       Flavour flavour) {
  const bool replica = identity.role == Role::kReplica;
  const bool mariadb = flavour == Flavour::kMariaDB;
  std::string out;
  out += fmt::format(
      "# replboot.cnf for {} ({}, {}): rendered by replboot at every start, so edit\n"
      "# [mysql.options] in replboot.toml instead of this file.\n",
      identity.hostname, RoleName(identity.role), FlavourName(flavour));
  out += "[mysqld]\n";
  out += fmt::format("server-id={}\n", identity.server_id);
  out += fmt::format("port={}\n", config.mysql.port);
  REPLBOOT_RETURN_IF_ERROR(Line(out, "bind-address", config.mysql.bind_address));
  REPLBOOT_RETURN_IF_ERROR(Line(out, "socket", config.mysql.socket));
  REPLBOOT_RETURN_IF_ERROR(Line(out, "datadir", config.mysql.datadir));
  out += "# Clients and peers are pods whose reverse DNS is slow and means nothing.\n";
  out += "skip-name-resolve=ON\n";
  out += "# Shown by SHOW REPLICA HOSTS on the source: the name peers reach this node by.\n";
  REPLBOOT_RETURN_IF_ERROR(
      Line(out, "report-host", identity.PeerName(identity.ordinal, config.cluster.service)));

  out += "\n# Binary log on every node, not just the primary: a replica seeds the next\n";
  out += "# one (its backup must carry a position) and can be promoted.\n";
  out += "log-bin=mysql-bin\n";
  out += "log-bin-index=mysql-bin.index\n";
  out += "binlog_format=ROW\n";
  out += "# Durable commits: a crash must not lose a transaction a replica already has.\n";
  out += "sync_binlog=1\n";
  out += "innodb_flush_log_at_trx_commit=1\n";
  out += "# A week of binlogs lets a clone catch up; without a limit MariaDB keeps them forever.\n";
  out += "binlog_expire_logs_seconds=604800\n";
  out += "relay-log=relay-bin\n";
  out += "relay-log-index=relay-bin.index\n";

  out += "\n# GTID replication, so a replica can switch source without file/position.\n";
  if (mariadb) {
    out += "gtid_strict_mode=ON\n";
    out += "log_slave_updates=ON\n";
    out += "# replboot starts replication itself once it knows the source; also on the\n";
    out += "# primary, which must never resume replicating from a former source.\n";
    out += "skip_slave_start=ON\n";
  } else {
    out += "gtid_mode=ON\n";
    out += "enforce_gtid_consistency=ON\n";
    out += "log_replica_updates=ON\n";
    out += "# replboot starts replication itself once it knows the source; also on the\n";
    out += "# primary, which must never resume replicating from a former source.\n";
    out += "skip_replica_start=ON\n";
  }

  if (replica) {
    out += "\n# Replica: only the replication threads write.\n";
    out += "read_only=ON\n";
    if (!mariadb) out += "super_read_only=ON\n";
    out += "# After a crash, discard the relay log and refetch from the source's position.\n";
    out += "relay_log_recovery=ON\n";
  } else {
    out += "\n# Primary: writable, also after a restart of a promoted former replica.\n";
    out += "read_only=OFF\n";
    if (!mariadb) out += "super_read_only=OFF\n";
  }

  if (!config.mysql.options.empty()) {
    // std::map is sorted by key: the output is deterministic.
    out += "\n# [mysql.options]: last, so they override the lines above.\n";
    for (const auto& [name, value] : config.mysql.options) {
      REPLBOOT_RETURN_IF_ERROR(Line(out, name, value));
    }
  }
  return out;
}

Flavour FlavourFromVersionText(const std::string& version_text) {
  // MariaDB says so in every version string ("Ver 10.11.19-MariaDB-0+deb12u1");
  // MySQL and Percona Server do not name themselves consistently, so everything
  // else is treated as MySQL.
  std::string lower;
  lower.reserve(version_text.size());
  for (char c : version_text)
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower.find("mariadb") != std::string::npos ? Flavour::kMariaDB : Flavour::kMySQL;
}

Result<Flavour> DetectFlavour(const Config& config) {
  if (config.node.flavour != "auto") {
    auto flavour = ParseFlavour(config.node.flavour);
    if (!flavour) return tl::unexpected(flavour.error().WithContext("node.flavour"));
    return *flavour;
  }

  std::vector<std::string> candidates;
  if (!config.mysql.mysqld.empty()) {
    candidates.push_back(config.mysql.mysqld);
  } else {
    candidates = {"mariadbd", "mysqld"};
  }
  std::string failures;
  for (const std::string& binary : candidates) {
    auto run = process::RunCapture({binary, "--version"}, process::ChildEnvironment());
    std::string failure;
    if (!run) {
      failure = run.error().message();
    } else if (!run->status.ok()) {
      failure = fmt::format("{} --version: {}", binary, run->status.ToString());
    } else if (run->out.empty() && run->err.empty()) {
      failure = fmt::format("{} --version printed nothing", binary);
    } else {
      return FlavourFromVersionText(run->out + run->err);
    }
    failures += (failures.empty() ? "" : "; ") + failure;
  }
  return Error(StatusCode::kNotFound,
               "cannot detect the server flavour ({}); set node.flavour (--flavour mariadb|mysql) "
               "or mysql.mysqld to the server binary",
               failures);
}

std::string ServerBinary(const Config& config, Flavour flavour) {
  if (!config.mysql.mysqld.empty()) return config.mysql.mysqld;
  return flavour == Flavour::kMariaDB ? "mariadbd" : "mysqld";
}

Result<std::string> WriteMysqldConfig(const std::string& dir, const std::string& content) {
  if (dir.empty()) return Error(StatusCode::kInvalidArgument, "config directory is empty");
  // Like `mkdir -p`: the config dir is often an emptyDir volume mounted fresh.
  auto dir_fd = files::MakeDirs(dir, 0755);
  if (!dir_fd) return Error(dir_fd.error().WithContext("config directory"));
  std::string path = dir + (dir.ends_with('/') ? "" : "/") + "replboot.cnf";
  // 0644: mysqld may run as another user than replboot and must read it; it holds
  // no secret.
  Status written = files::WriteFileAtomicAt(*dir_fd, dir, "replboot.cnf", content, 0644);
  ::close(*dir_fd);
  REPLBOOT_RETURN_IF_ERROR(written);
  return path;
}

}  // namespace replboot::conf
