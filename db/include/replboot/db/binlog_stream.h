// A replication connection that reads a MariaDB primary's binlog from a GTID position, as a
// replica's IO thread does (MariaDB Connector/C's mariadb_rpl API: COM_BINLOG_DUMP after the
// slave_connect_state handshake). The events come as the server sent them, each whole; the
// caller parses them (binlog/cutter.h): nothing here trusts their contents.
//
// The connection is made like every Session (db::Connect: TLS, restricted authentication
// plugins, connect and read timeouts). The primary sends a heartbeat every `heartbeat` while it
// has nothing to send, so a read that waits past ConnectOptions::read_timeout means the
// primary or the path is gone: Next() fails (kUnavailable) and the caller reconnects.
//
// Blocking, one thread at a time, like a Session.
#ifndef REPLBOOT_DB_BINLOG_STREAM_H_
#define REPLBOOT_DB_BINLOG_STREAM_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "replboot/base/status.h"
#include "replboot/db/client.h"

namespace replboot::db {

struct BinlogStreamOptions {
  // This reader's server_id, unique among the primary's replicas and readers (a second
  // connection with the same id makes the server drop the first).
  uint32_t server_id = 0;
  // One GTID per domain (@slave_connect_state): the stream starts after these.
  std::string connect_state;
  std::chrono::milliseconds heartbeat{500};
};

// The server's error 1236 (ER_MASTER_FATAL_ERROR_READING_BINLOG): the position is not in any
// binlog the primary still has (purged), or not in its history at all.
inline constexpr unsigned kErrorReadingBinlog = 1236;

class BinlogStream {
 public:
  virtual ~BinlogStream() = default;
  // The next event (header to checksum), valid until the next call. kUnavailable when the
  // connection ends or the read timeout passes; the server's own error (e.g. 1236) has its
  // number in LastErrorNumber() and its text in the message.
  virtual Result<std::span<const uint8_t>> Next() = 0;
  virtual unsigned LastErrorNumber() const = 0;
  // VERSION() of the primary.
  virtual const std::string& server_version() const = 0;
};

// Connects, checks that the primary writes checksummed binlogs (binlog_checksum = CRC32: the
// archive keeps the primary's checksums as proof of its bytes; NONE is refused with
// kInvalidArgument), declares this reader GTID- and checksum-aware and starts the dump.
Result<std::unique_ptr<BinlogStream>> OpenBinlogStream(const ConnectOptions& connect,
                                                       const BinlogStreamOptions& options);

}  // namespace replboot::db

#endif  // REPLBOOT_DB_BINLOG_STREAM_H_
