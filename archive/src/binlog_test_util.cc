#include "binlog_test_util.h"

#include <cstring>

namespace replboot::archive::testing {
namespace {

void Put32(std::vector<uint8_t>& out, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[at + i] = static_cast<uint8_t>(v >> (8 * i));
}
void Append(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

}  // namespace

std::vector<uint8_t> MakeEvent(uint8_t type, uint32_t timestamp, uint32_t server_id,
                               const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> e(binlog::kHeaderSize);
  Put32(e, 0, timestamp);
  e[4] = type;
  Put32(e, 5, server_id);
  e.insert(e.end(), payload.begin(), payload.end());
  const uint32_t size = static_cast<uint32_t>(e.size() + 4);
  Put32(e, 9, size);
  Put32(e, 13, 0);
  Append(e, 0, 4);
  binlog::Reseal(e, binlog::ChecksumAlg::kCrc32);
  return e;
}

std::vector<uint8_t> MakeBinlog(const std::vector<TestTransaction>& transactions,
                                const GtidState* gtid_list) {
  std::vector<uint8_t> out(std::begin(binlog::kBinlogMagic), std::end(binlog::kBinlogMagic));
  std::vector<uint8_t> fde;
  Append(fde, 4, 2);                         // binlog version
  const char version[] = "10.11.6-MariaDB-test";
  std::vector<uint8_t> v(50, 0);
  std::memcpy(v.data(), version, sizeof version - 1);
  fde.insert(fde.end(), v.begin(), v.end());
  Append(fde, 1'700'000'000, 4);             // created
  fde.push_back(19);                         // header length
  std::vector<uint8_t> post(168, 0);
  post[binlog::kQueryEvent - 1] = 13;
  post[binlog::kGtidEvent - 1] = 19;
  fde.insert(fde.end(), post.begin(), post.end());
  fde.push_back(1);                          // CRC32
  // MakeEvent appends the checksum.
  auto f = MakeEvent(binlog::kFormatDescriptionEvent, 1'700'000'000, 100, fde);
  out.insert(out.end(), f.begin(), f.end());
  if (gtid_list != nullptr) {
    std::vector<uint8_t> l;
    Append(l, gtid_list->entries().size(), 4);
    for (const auto& [ds, seq] : gtid_list->entries()) {
      Append(l, ds.first, 4);
      Append(l, ds.second, 4);
      Append(l, seq, 8);
    }
    auto e = MakeEvent(binlog::kGtidListEvent, 1'700'000'000, 100, l);
    out.insert(out.end(), e.begin(), e.end());
  }
  for (const auto& t : transactions) {
    std::vector<uint8_t> g;
    Append(g, t.gtid.sequence, 8);
    Append(g, t.gtid.domain, 4);
    g.push_back(4);  // FL_TRANSACTIONAL
    g.resize(19, 0);
    auto gtid = MakeEvent(binlog::kGtidEvent, t.commit_time, t.gtid.server_id, g);
    std::vector<uint8_t> rows(t.payload_bytes);
    for (size_t i = 0; i < rows.size(); ++i)
      rows[i] = static_cast<uint8_t>(t.gtid.sequence * 31 + i);
    auto r = MakeEvent(19, t.commit_time, t.gtid.server_id, rows);
    std::vector<uint8_t> xid;
    Append(xid, t.gtid.sequence, 8);
    auto x = MakeEvent(binlog::kXidEvent, t.commit_time, t.gtid.server_id, xid);
    for (const auto* e : {&gtid, &r, &x}) out.insert(out.end(), e->begin(), e->end());
  }
  return out;
}

BinlogSegment MakeSegment(const std::string& history, uint64_t first_seq, uint64_t last_seq,
                          uint32_t time0) {
  std::vector<TestTransaction> txns;
  for (uint64_t s = first_seq; s <= last_seq; ++s)
    txns.push_back({Gtid{0, 100, s}, static_cast<uint32_t>(time0 + s)});
  BinlogSegment seg;
  seg.history = history;
  seg.binlog = MakeBinlog(txns);
  seg.start_state = first_seq > 1 ? Gtid{0, 100, first_seq - 1}.ToString() : "";
  seg.end_state = Gtid{0, 100, last_seq}.ToString();
  seg.first_gtid = Gtid{0, 100, first_seq}.ToString();
  seg.last_gtid = Gtid{0, 100, last_seq}.ToString();
  seg.first_commit_time = time0 + first_seq;
  seg.last_commit_time = time0 + last_seq;
  seg.transactions = last_seq - first_seq + 1;
  seg.server_id = 100;
  seg.server_version = "10.11.6-MariaDB-test";
  return seg;
}

}  // namespace replboot::archive::testing
