// A whole MariaDB binlog file (a segment, or a file `replboot binlog archive-file` is given),
// read with the event parser of events.h just far enough to find its transactions: the
// Format_description, then event groups from their GTID event to the event EndsGroupOf()
// takes as the commit. Events outside a group (Gtid_list, Binlog_checkpoint, Rotate, Stop)
// are listed by type; a Start_encryption event (an encrypted binlog) is refused.
//
// Every byte is untrusted: sizes are checked against what is left before anything is read,
// checksums are verified (the active file's Format_description carries the in-use flag set
// after its checksum was computed: it is checked with the flag cleared), and errors name the
// file (or segment) and the offset.
#ifndef REPLBOOT_BINLOG_FILE_H_
#define REPLBOOT_BINLOG_FILE_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "replboot/base/status.h"
#include "replboot/binlog/gtid.h"

namespace replboot::binlog {

// One transaction of a binlog file: its GTID, its commit time (the GTID event's timestamp),
// and where its bytes are (from its GTID event through its commit event).
struct BinlogTransaction {
  Gtid gtid;
  uint32_t commit_time = 0;
  size_t offset = 0;
  size_t length = 0;
};

struct ParsedBinlog {
  // Bytes 0..format_end: the magic and the Format_description event.
  size_t format_end = 0;
  bool checksums = false;  // CRC32 on every event
  // From the Format_description: the server that wrote the file and its version.
  uint32_t server_id = 0;
  std::string server_version;
  std::vector<BinlogTransaction> transactions;
  // Events outside any transaction besides the Format_description: their types, in order.
  // A segment has none.
  std::vector<uint8_t> outside_events;
  // Bytes after the last whole transaction (a file still being written, cut mid-event or
  // mid-transaction); 0 for a complete file. complete_end is where they start.
  size_t incomplete_tail = 0;
  size_t complete_end = 0;
  // The Gtid_list event before the first transaction (MariaDB writes one at the start of every
  // binlog file): the @@gtid_binlog_state the file starts from.
  bool has_gtid_list = false;
  GtidState gtid_list;
};

// Parses `file`; `name` goes into every error ("segment …", "binlog file …"). With
// `allow_tail`, bytes after the last whole transaction are reported in incomplete_tail (a
// live file); without, they are kCorruption.
Result<ParsedBinlog> ParseBinlog(std::span<const uint8_t> file, std::string_view name,
                                 bool allow_tail = false);

}  // namespace replboot::binlog

#endif  // REPLBOOT_BINLOG_FILE_H_
