#include "replboot/binlog/cutter.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace replboot::binlog {

// --- SegmentCutter ----------------------------------------------------------------------

SegmentCutter::SegmentCutter(CutterOptions options, GtidState start)
    : options_(std::move(options)),
      state_(start),
      sealed_(std::move(start)),
      alg_(options_.initial_checksum) {}

Status SegmentCutter::Refuse(const EventHeader& h, const std::string& why) const {
  return Status(StatusCode::kCorruption,
                fmt::format("binlog event #{} ({}, log_pos {}): {}", events_,
                            EventTypeName(h.type), h.log_pos, why));
}

std::optional<SegmentCutter::Clock::time_point> SegmentCutter::pending_since() const {
  if (transactions_ > 0) return first_arrival_;
  if (in_group_ && !skip_group_) return group_arrival_;
  return std::nullopt;
}

Result<std::optional<CutSegment>> SegmentCutter::AddFormatDescription(
    std::span<const uint8_t> event, const EventHeader& h) {
  if (in_group_) {
    return Error(Refuse(h, fmt::format("inside the event group of {}", group_gtid_.ToString())));
  }
  auto fd = ParseFormatDescription(event);
  if (!fd) return Error(fd.error().WithContext(fmt::format("binlog event #{}", events_)));
  std::optional<CutSegment> sealed;
  // A segment is one binlog file with one Format_description: a primary whose format changed
  // (an upgrade, binlog_checksum) starts a new one.
  if (transactions_ > 0 && fd_ &&
      (fd->binlog_version != fd_->binlog_version || fd->server_version != fd_->server_version ||
       fd->post_header_lengths != fd_->post_header_lengths || fd->checksum != fd_->checksum)) {
    sealed = Seal();
  }
  fd_ = std::move(*fd);
  alg_ = fd_->checksum;
  fd_server_id_ = h.server_id;
  // The segment is a closed file: mariadb-binlog would warn about one still "in use".
  fd_bytes_.assign(event.begin(), event.end());
  const uint16_t flags = h.flags & ~kFlagInUse;
  fd_bytes_[17] = static_cast<uint8_t>(flags);
  fd_bytes_[18] = static_cast<uint8_t>(flags >> 8);
  // The FD's own checksum is there whatever the algorithm; recomputed only when it is used.
  Reseal(fd_bytes_, fd_->checksum);
  return sealed;
}

Result<std::optional<CutSegment>> SegmentCutter::Add(std::span<const uint8_t> event,
                                                      Clock::time_point now) {
  ++events_;
  if (event.size() >= kHeaderSize && event[4] == kFormatDescriptionEvent) {
    auto h = ParseHeader(event, ChecksumAlg::kCrc32);
    if (!h) return Error(h.error().WithContext(fmt::format("binlog event #{}", events_)));
    auto sealed = AddFormatDescription(event, *h);
    if (!sealed || *sealed) return sealed;
    return Tick(now);
  }
  auto h = ParseHeader(event, alg_);
  if (!h) return Error(h.error().WithContext(fmt::format("binlog event #{}", events_)));
  if (Status s = VerifyChecksum(event, alg_); !s.ok()) return Error(Refuse(*h, s.message()));
  const auto body = Body(event, alg_);
  if (!in_group_) {
    switch (h->type) {
      case kRotateEvent: {
        auto r = ParseRotate(body);
        if (!r) return Error(Refuse(*h, r.error().message()));
        break;
      }
      case kGtidListEvent: {
        auto l = ParseGtidList(body);
        if (!l) return Error(Refuse(*h, l.error().message()));
        break;
      }
      case kHeartbeatEvent:
      case kBinlogCheckpointEvent:
      case kStopEvent:
      case kStartEncryptionEvent:
        break;
      case kGtidEvent: {
        if (!fd_) return Error(Refuse(*h, "an event group before any Format_description"));
        auto g = ParseGtid(*h, body);
        if (!g) return Error(Refuse(*h, g.error().message()));
        in_group_ = true;
        group_gtid_ = *g;
        skip_group_ = state_.Holds(g->domain, g->server_id, g->seq);
        group_.assign(event.begin(), event.end());
        group_arrival_ = now;
        break;
      }
      default:
        return Error(Refuse(*h, "outside an event group (no GTID event before it)"));
    }
    return Tick(now);
  }
  switch (h->type) {
    case kHeartbeatEvent:
      return Tick(now);
    case kFormatDescriptionEvent:
    case kRotateEvent:
    case kGtidEvent:
    case kGtidListEvent:
    case kBinlogCheckpointEvent:
    case kStopEvent:
    case kStartEncryptionEvent:
      return Error(
          Refuse(*h, fmt::format("inside the event group of {}", group_gtid_.ToString())));
    default:
      break;
  }
  if (group_.size() + event.size() > options_.max_group_bytes) {
    return Error(Refuse(*h, fmt::format("the event group of {} exceeds {} bytes",
                                        group_gtid_.ToString(), options_.max_group_bytes)));
  }
  group_.insert(group_.end(), event.begin(), event.end());
  auto ends = EndsGroupOf(group_gtid_, *h, body, *fd_);
  if (!ends) return Error(Refuse(*h, ends.error().message()));
  if (*ends) CompleteGroup();
  return Tick(now);
}

void SegmentCutter::CompleteGroup() {
  in_group_ = false;
  if (skip_group_) {
    ++duplicates_;
    group_.clear();
    return;
  }
  if (transactions_ == 0) {
    binlog_.assign(std::begin(kBinlogMagic), std::end(kBinlogMagic));
    binlog_.insert(binlog_.end(), fd_bytes_.begin(), fd_bytes_.end());
    segment_server_id_ = fd_server_id_;
    segment_version_ = fd_->server_version;
    first_gtid_ = group_gtid_.ToString();
    first_commit_ = group_gtid_.timestamp;
    first_arrival_ = group_arrival_;
  }
  binlog_.insert(binlog_.end(), group_.begin(), group_.end());
  group_.clear();
  ++transactions_;
  last_gtid_ = group_gtid_.ToString();
  last_commit_ = group_gtid_.timestamp;
  commit_times_.push_back(group_gtid_.timestamp);
  state_.Record(group_gtid_.domain, group_gtid_.server_id, group_gtid_.seq);
}

std::optional<CutSegment> SegmentCutter::Tick(Clock::time_point now) {
  if (transactions_ == 0) return std::nullopt;
  if (binlog_.size() >= options_.seal_bytes || now - *first_arrival_ >= options_.seal_interval)
    return Seal();
  return std::nullopt;
}

std::optional<CutSegment> SegmentCutter::Flush() {
  if (transactions_ == 0) return std::nullopt;
  return Seal();
}

std::optional<CutSegment> SegmentCutter::Seal() {
  CutSegment out;
  BinlogSegment& s = out.segment;
  s.history = options_.history;
  s.binlog = std::move(binlog_);
  s.start_state = sealed_.ToString();
  s.end_state = state_.ToString();
  s.first_gtid = std::move(first_gtid_);
  s.last_gtid = std::move(last_gtid_);
  s.first_commit_time = first_commit_;
  s.last_commit_time = last_commit_;
  s.transactions = transactions_;
  s.server_id = segment_server_id_;
  s.server_version = segment_version_;
  out.commit_times = std::move(commit_times_);
  out.first_arrival = *first_arrival_;
  sealed_ = state_;
  binlog_.clear();
  commit_times_.clear();
  first_gtid_.clear();
  last_gtid_.clear();
  transactions_ = 0;
  first_arrival_.reset();
  return out;
}

}  // namespace replboot::binlog
