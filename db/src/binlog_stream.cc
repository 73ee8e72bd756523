#include "replboot/db/binlog_stream.h"

// mysql.h first: mariadb_rpl.h uses its types.
#include <mysql.h>
// clang-format off
#include <mariadb_rpl.h>
// clang-format on

#include <algorithm>
#include <cctype>
#include <cstring>

#include "connect_internal.h"

namespace replboot::db {

namespace {

std::string Where(const ConnectOptions& o) {
  if (!o.socket.empty()) return "unix:" + o.socket;
  return fmt::format("{}:{}", o.host, o.port);
}

class RplStream final : public BinlogStream {
 public:
  RplStream(MYSQL* mysql, MARIADB_RPL* rpl, std::string where, std::string version)
      : mysql_(mysql), rpl_(rpl), where_(std::move(where)), version_(std::move(version)) {}
  ~RplStream() override {
    if (event_ != nullptr) mariadb_free_rpl_event(event_);
    mariadb_rpl_close(rpl_);
    mysql_close(mysql_);
  }
  RplStream(const RplStream&) = delete;
  RplStream& operator=(const RplStream&) = delete;

  Result<std::span<const uint8_t>> Next() override {
    // The previous event is freed here and a new one fetched, never handed back for reuse:
    // Connector/C 3.3 leaves an event passed in unusable when the fetch fails (a lost
    // connection), and freeing it then crashed the process.
    if (event_ != nullptr) {
      mariadb_free_rpl_event(event_);
      event_ = nullptr;
    }
    MARIADB_RPL_EVENT* ev = mariadb_rpl_fetch(rpl_, nullptr);
    if (ev == nullptr) {
      last_errno_ = mysql_errno(mysql_) != 0 ? mysql_errno(mysql_) : mariadb_rpl_errno(rpl_);
      const char* text = mysql_errno(mysql_) != 0 ? mysql_error(mysql_) : mariadb_rpl_error(rpl_);
      const StatusCode code =
          last_errno_ == kErrorReadingBinlog ? StatusCode::kNotFound : StatusCode::kUnavailable;
      return Error(code, "binlog stream from {}: error {}: {}", where_, last_errno_,
                   text != nullptr ? text : "connection ended");
    }
    event_ = ev;
    // raw_data is the packet: the OK byte, then the event. Its size is the packet's.
    if (ev->raw_data == nullptr || ev->raw_data_size < 1 || ev->raw_data_ofs != 1) {
      return Error(StatusCode::kCorruption,
                   "binlog stream from {}: a packet of {} bytes without an event", where_,
                   ev->raw_data_size);
    }
    return std::span<const uint8_t>(ev->raw_data + 1, ev->raw_data_size - 1);
  }

  unsigned LastErrorNumber() const override { return last_errno_; }
  const std::string& server_version() const override { return version_; }

 private:
  MYSQL* mysql_;
  MARIADB_RPL* rpl_;
  MARIADB_RPL_EVENT* event_ = nullptr;
  std::string where_;
  std::string version_;
  unsigned last_errno_ = 0;
};

Result<std::string> QueryOne(MYSQL* mysql, const std::string& sql, const std::string& where) {
  if (mysql_real_query(mysql, sql.data(), sql.size()) != 0) {
    return Error(StatusCode::kUnavailable, "binlog stream from {}: error {}: {}", where,
                 mysql_errno(mysql), mysql_error(mysql));
  }
  MYSQL_RES* res = mysql_store_result(mysql);
  if (res == nullptr) {
    return Error(StatusCode::kUnavailable, "binlog stream from {}: no result: {}", where,
                 mysql_error(mysql));
  }
  std::string value;
  MYSQL_ROW row = mysql_fetch_row(res);
  unsigned long* lengths = mysql_fetch_lengths(res);
  if (row != nullptr && mysql_num_fields(res) >= 1 && row[0] != nullptr && lengths != nullptr) {
    value.assign(row[0], std::min<unsigned long>(lengths[0], 4096));
  }
  mysql_free_result(res);
  return value;
}

Status Run(MYSQL* mysql, const std::string& sql, const std::string& where) {
  if (mysql_real_query(mysql, sql.data(), sql.size()) != 0) {
    return Status(StatusCode::kUnavailable,
                  fmt::format("binlog stream from {}: error {}: {}", where, mysql_errno(mysql),
                              mysql_error(mysql)));
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<BinlogStream>> OpenBinlogStream(const ConnectOptions& connect,
                                                       const BinlogStreamOptions& options) {
  const std::string where = Where(connect);
  if (options.server_id == 0) {
    return Error(StatusCode::kInvalidArgument, "binlog stream from {}: server_id 0", where);
  }
  for (char c : options.connect_state) {
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == ',')) {
      return Error(StatusCode::kInvalidArgument,
                   "binlog stream from {}: the start position is not a GTID list (a byte {:#04x})",
                   where, static_cast<unsigned>(static_cast<unsigned char>(c)));
    }
  }
  auto raw = ConnectRaw(connect);
  if (!raw) return Error(raw.error());
  MYSQL* mysql = *raw;
  auto fail = [&](Status s) -> Result<std::unique_ptr<BinlogStream>> {
    mysql_close(mysql);
    return Error(std::move(s));
  };
  auto checksum = QueryOne(mysql, "SELECT @@GLOBAL.binlog_checksum", where);
  if (!checksum) return fail(checksum.error());
  if (*checksum != "CRC32") {
    return fail(Status(StatusCode::kInvalidArgument,
                       fmt::format("binlog stream from {}: the primary's binlog_checksum is {}; "
                                   "the archive needs CRC32 (the primary's checksums are what "
                                   "proves each archived event)",
                                   where, checksum->empty() ? "unknown" : *checksum)));
  }
  auto version = QueryOne(mysql, "SELECT VERSION()", where);
  if (!version) return fail(version.error());
  // What a MariaDB 10.x IO thread says before its dump: checksum-aware, GTID-aware
  // (capability 4), the position, a heartbeat period in nanoseconds.
  const long long heartbeat_ns = static_cast<long long>(options.heartbeat.count()) * 1'000'000;
  for (const std::string& sql :
       {std::string("SET @master_binlog_checksum = @@GLOBAL.binlog_checksum"),
        std::string("SET @mariadb_slave_capability = 4"),
        fmt::format("SET @slave_connect_state = '{}'", options.connect_state),
        std::string("SET @slave_gtid_strict_mode = 0"),
        std::string("SET @slave_gtid_ignore_duplicates = 0"),
        fmt::format("SET @master_heartbeat_period = {}", heartbeat_ns)}) {
    if (Status s = Run(mysql, sql, where); !s.ok()) return fail(s);
  }
  MARIADB_RPL* rpl = mariadb_rpl_init(mysql);
  if (rpl == nullptr) {
    return fail(Status(StatusCode::kInternal,
                       fmt::format("binlog stream from {}: mariadb_rpl_init failed", where)));
  }
  unsigned int server_id = options.server_id;
  unsigned long start = 4;
  // Annotate_rows events carry each row event's statement: mariadb-binlog shows them.
  unsigned int flags = MARIADB_RPL_BINLOG_SEND_ANNOTATE_ROWS;
  if (mariadb_rpl_optionsv(rpl, MARIADB_RPL_SERVER_ID, server_id) != 0 ||
      mariadb_rpl_optionsv(rpl, MARIADB_RPL_START, start) != 0 ||
      mariadb_rpl_optionsv(rpl, MARIADB_RPL_FLAGS, flags) != 0 ||
      mariadb_rpl_optionsv(rpl, MARIADB_RPL_FILENAME, "", size_t{0}) != 0) {
    mariadb_rpl_close(rpl);
    return fail(Status(StatusCode::kInternal,
                       fmt::format("binlog stream from {}: libmariadb refused an rpl option",
                                   where)));
  }
  if (mariadb_rpl_open(rpl) != 0) {
    Status s(StatusCode::kUnavailable,
             fmt::format("binlog stream from {}: dump refused: error {}: {}", where,
                         mariadb_rpl_errno(rpl), mariadb_rpl_error(rpl)));
    mariadb_rpl_close(rpl);
    return fail(s);
  }
  return std::unique_ptr<BinlogStream>(
      std::make_unique<RplStream>(mysql, rpl, where, std::move(*version)));
}

}  // namespace replboot::db
