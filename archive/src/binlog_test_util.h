// Test support: small MariaDB binlog files made by hand (the Format_description, GTID events,
// a rows-like event, XID commits, CRC32 on every event) and the segments cut from them.
#ifndef REPLBOOT_ARCHIVE_BINLOG_TEST_UTIL_H_
#define REPLBOOT_ARCHIVE_BINLOG_TEST_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "replboot/archive/binlog_archive.h"
#include "replboot/binlog/events.h"

namespace replboot::archive::testing {

struct TestTransaction {
  Gtid gtid;
  uint32_t commit_time = 0;
  size_t payload_bytes = 40;  // of the rows-like event between the GTID and the XID
};

// A binlog file: magic, Format_description, then each transaction (GTID, rows, XID).
// With `gtid_list`, a Gtid_list event of that state follows the Format_description (as a
// server writes at the start of every binlog file).
std::vector<uint8_t> MakeBinlog(const std::vector<TestTransaction>& transactions,
                                const GtidState* gtid_list = nullptr);
// One event with a valid header and CRC32: `type`, `timestamp`, `server_id`, `payload`.
std::vector<uint8_t> MakeEvent(uint8_t type, uint32_t timestamp, uint32_t server_id,
                               const std::vector<uint8_t>& payload);

// A segment of `history` holding transactions `first_seq`..`last_seq` of domain 0, server
// 100, committed at `time0` + seq, whose start state is 0-100-(first_seq - 1).
BinlogSegment MakeSegment(const std::string& history, uint64_t first_seq, uint64_t last_seq,
                          uint32_t time0 = 1'800'000'000);

}  // namespace replboot::archive::testing

#endif  // REPLBOOT_ARCHIVE_BINLOG_TEST_UTIL_H_
