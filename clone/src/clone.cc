#include "replboot/clone/clone.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "extract.h"
#include "handshake.h"
#include "net.h"
#include "resume.h"
#include "wire_compression.h"
#include "replboot/base/files.h"
#include "replboot/base/log.h"
#include "replboot/discovery/prober.h"
#include "replboot/base/process.h"
#include "replboot/clone/backup_server.h"
#include "replboot/clone/cluster_id.h"
#include "replboot/clone/datadir.h"

namespace replboot::clone {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

auto Log() { return log::Get("clone"); }

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// The stream header, right after the handshake. The socket is then at the first DATA frame.
Result<StreamHeader> ReadHeader(net::Socket& sock, const CloneOptions& options) {
  const std::string& peer = sock.peer();
  auto header_frame = sock.ReadControlFrame(options.idle_timeout);
  if (!header_frame) return Error(header_frame.error());
  if (header_frame->type == FrameType::kError)
    return Error(ServerErrorStatus(peer, header_frame->payload));
  if (header_frame->type != FrameType::kHeader) {
    return Error(StatusCode::kCorruption, "{} sent {} instead of the stream header", peer,
                 FrameTypeName(header_frame->type));
  }
  auto header = DecodeStreamHeader(header_frame->payload);
  if (!header) return Error(header.error().WithContext(fmt::format("from {}", peer)));
  return header;
}

// `<tool> --version` output, run once per tool and process: every probe of every round checks
// it, and the local binary does not change under a running replboot.
Result<std::string> ToolVersionText(const std::string& tool) {
  static std::mutex mu;
  static std::map<std::string, std::string> cache;
  std::lock_guard lock(mu);
  if (auto it = cache.find(tool); it != cache.end()) return it->second;
  auto version = process::RunCapture({tool, "--version"}, process::ChildEnvironment());
  if (!version)
    return Error(version.error().WithContext(fmt::format("running {} --version", tool)));
  return cache.emplace(tool, version->out + version->err).first->second;
}

// Flavour and major.minor of the donor's server against the local backup tool: --prepare
// refuses a backup of another version, so a mismatch is refused before any byte is written.
Status CheckCompatible(const std::string& peer, const std::string& flavour,
                       const std::string& server_version, const CloneOptions& options) {
  if (flavour != FlavourName(options.flavour)) {
    return Status(
        StatusCode::kInvalidArgument,
        fmt::format("donor {} runs {} {}, this node is {}: a backup cannot cross flavours", peer,
                    flavour, server_version, FlavourName(options.flavour)));
  }
  const std::string tool = LocalTool(options);
  auto version = ToolVersionText(tool);
  if (!version) return version.error();
  const std::string& text = *version;
  // "mariabackup based on MariaDB server 10.11.19-MariaDB Linux (x86_64)".
  auto local =
      MajorMinor(text.substr(text.find("server") == std::string::npos ? 0 : text.find("server")));
  auto donor = MajorMinor(server_version);
  if (!local || !donor) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("cannot compare versions: donor {} server {}, local {} {}", peer,
                              log::Printable(server_version), tool, log::Printable(text.substr(0, text.find('\n')))));
  }
  if (*local != *donor) {
    return Status(
        StatusCode::kInvalidArgument,
        fmt::format(
            "donor {} runs server {} but the local {} is {}: --prepare needs the same major "
            "version ({} vs {})",
            peer, server_version, tool, text.substr(0, text.find('\n')), *donor, *local));
  }
  return Status::Ok();
}

Status Preflight(const std::string& peer, const StreamHeader& header, const CloneOptions& options) {
  if (Status s = CheckCompatible(peer, header.flavour, header.server_version, options); !s.ok())
    return s;
  if (!options.expected_cluster_id.empty() && header.cluster_id != options.expected_cluster_id) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("donor {} streams data of cluster {}, not this node's {}", peer,
                              header.cluster_id.empty() ? "(none)" : header.cluster_id,
                              options.expected_cluster_id));
  }
  if (options.check_free_space && header.estimated_bytes > 0) {
    auto free = files::FreeBytes(files::ParentDir(options.datadir));
    if (!free) return free.error();
    auto need =
        static_cast<uint64_t>(static_cast<double>(header.estimated_bytes) * options.space_margin);
    if (*free < need) {
      return Status(
          StatusCode::kNoSpace,
          fmt::format("no space left for the clone: {} streams about {} bytes, with the {:.0f} % "
                      "margin {} are needed, {} has {} free",
                      peer, header.estimated_bytes, (options.space_margin - 1) * 100, need,
                      files::ParentDir(options.datadir), *free));
    }
  }
  return Status::Ok();
}

void Report(const CloneOptions& options, const CloneProgressEvent& event) {
  if (options.on_progress) options.on_progress(event);
}

CloneProgressEvent Event(std::string phase, std::string donor = "", uint64_t bytes = 0,
                         uint64_t estimated_bytes = 0) {
  CloneProgressEvent event;
  event.phase = std::move(phase);
  event.donor = std::move(donor);
  event.bytes = bytes;
  event.estimated_bytes = estimated_bytes;
  return event;
}

// An event once the donor's header is in: its estimate and the run the bytes come from.
// "off", "zstd:1", "auto:3": what a HEADER granted, for logs and /status.
std::string GrantText(const StreamHeader& header) {
  if (header.compression == "off") return "off";
  return fmt::format("{}:{}", header.compression, header.compression_level);
}

CloneProgressEvent Event(std::string phase, std::string donor, uint64_t bytes,
                         const StreamHeader& header) {
  CloneProgressEvent event =
      Event(std::move(phase), std::move(donor), bytes, header.estimated_bytes);
  event.donor_run = header.run_id;
  event.donor_run_receivers = header.run_receivers;
  event.compression = GrantText(header);
  return event;
}

// Where a stream's frames go on the resume chain (protocol.h, "Why resume"): each frame the
// receiver checked is logged with the chain before and after it, for the durable points.
struct ChainTrack {
  ResumeChain key{};
  ResumeChain chain{};
  std::shared_ptr<FrameLog> frames;
  uint64_t skip = 0;  // a resumed stream's first bytes, which the durable point already holds
};

// Reads DATA (and, when compression was granted, ZDATA) frames into the extractor until the
// TRAILER. Each ZDATA frame's tag is checked by ReadFrame before any of it is decompressed.
// `*bytes_out` starts at the stream offset of the first frame's first byte (0, or where a
// resumed stream starts); `*wire_out` gets the DATA/ZDATA payload bytes of this session.
Result<StreamTrailer> Receive(net::Socket& sock, StreamExtractor& extractor,
                              const StreamHeader& header, const CloneOptions& options,
                              uint64_t* bytes_out, uint64_t* wire_out,
                              ChainTrack* track = nullptr) {
  const std::string& peer = sock.peer();
  const bool compressed = header.compression != "off";
  std::optional<FrameDecompressor> decompressor;
  if (compressed) {
    auto created = FrameDecompressor::Create();
    if (!created) return Error(created.error());
    decompressor.emplace(std::move(*created));
  }
  std::vector<uint8_t> plain;  // a ZDATA frame's bytes, decompressed (kMaxFrameContent at most)
  uint64_t wire = 0;
  const std::string grant = GrantText(header);
  // Every frame is read into a buffer of exactly kMaxDataPayload capacity, handed to the
  // extractor whole (WriteBlock) and recycled: the stream's memory is the pipeline's cap
  // plus this buffer and the pipeline's spare, whatever the frames' sizes (extract.h).
  std::vector<uint8_t> buffer;
  uint64_t bytes = *bytes_out;
  const auto start = Clock::now();
  auto next_progress = start + options.progress_interval;
  auto next_report = start;
  auto last_byte = start;
  // Logs and reports progress when due; also called while a read waits, so a donor that
  // stops sending shows as stalled (rate 0, no ETA) within kStallAfter and a report interval.
  auto progress = [&] {
    const auto now = Clock::now();
    if (now < next_progress && !(options.on_progress && now >= next_report)) return;
    const double elapsed = Seconds(start);
    const double idle = std::chrono::duration<double>(now - last_byte).count();
    const bool stalled = now - last_byte >= kStallAfter;
    double mbps = elapsed > 0 && !stalled ? static_cast<double>(bytes) / 1e6 / elapsed : 0;
    // -1: no estimate to go by, or stalled. The estimate may be a little short of the
    // stream; the ETA then stays at 0.
    int64_t eta = -1;
    if (header.estimated_bytes > 0 && mbps > 0) {
      eta = header.estimated_bytes > bytes
                ? static_cast<int64_t>(static_cast<double>(header.estimated_bytes - bytes) / 1e6 /
                                       mbps)
                : 0;
    }
    if (now >= next_report) {
      next_report = now + options.progress_report_interval;
      CloneProgressEvent event = Event("streaming", peer, bytes, header);
      event.wire_bytes = wire;
      event.bytes_per_second = mbps * 1e6;
      if (eta >= 0) event.eta_seconds = static_cast<double>(eta);
      if (stalled) event.stalled_seconds = idle;
      Report(options, event);
    }
    if (now >= next_progress) {
      next_progress = now + options.progress_interval;
      if (stalled) {
        Log()->warn("event=clone_progress peer={} bytes={} estimated_bytes={} stalled_s={:.0f}",
                    peer, bytes, header.estimated_bytes, idle);
      } else {
        Log()->info(
            "event=clone_progress peer={} bytes={} estimated_bytes={} mb_per_s={:.1f} eta_s={} "
            "compression={} wire_bytes={}",
            peer, bytes, header.estimated_bytes, mbps, eta, grant, wire);
      }
    }
  };
  sock.SetIdleHook(progress);
  struct ClearHook {
    net::Socket& sock;
    ~ClearHook() { sock.SetIdleHook({}); }
  } clear_hook{sock};
  for (;;) {
    if (options.stop.stop_requested())
      return Error(StatusCode::kCancelled, "clone from {} cancelled", peer);
    // The whole frame, its tag checked, before any of its bytes go further (protocol.h).
    if (buffer.capacity() < kMaxDataPayload) buffer.reserve(kMaxDataPayload);
    auto type = sock.ReadFrame(buffer, options.idle_timeout, /*allow_data=*/true);
    if (!type) {
      const Status& s = type.error();
      if (s.code() == StatusCode::kPermissionDenied) {
        return Error(StatusCode::kPermissionDenied,
                     "stream from {} refused at byte {}: {}; nothing from it is kept", peer, bytes,
                     s.message());
      }
      if (s.code() == StatusCode::kCorruption) {
        return Error(s.WithContext(fmt::format("stream from {} at byte {}", peer, bytes)));
      }
      return Error(s.code() == StatusCode::kTimeout || s.code() == StatusCode::kCancelled
                       ? s.code()
                       : StatusCode::kUnavailable,
                   "stream from {} broke after {} bytes: {}", peer, bytes, s.message());
    }
    if (*type == FrameType::kTrailer || *type == FrameType::kError) {
      std::string_view payload(reinterpret_cast<const char*>(buffer.data()), buffer.size());
      if (*type == FrameType::kError) {
        ErrorMessage e = DecodeErrorMessage(payload);
        return Error(StatusCode::kUnavailable, "{} aborted the stream ({}): {}", peer, e.code,
                     e.message);
      }
      auto trailer = DecodeStreamTrailer(payload);
      if (!trailer) return Error(trailer.error().WithContext(fmt::format("from {}", peer)));
      if (trailer->wire_bytes != 0 && trailer->wire_bytes != wire) {
        return Error(StatusCode::kCorruption, "{} says it sent {} wire bytes, {} arrived", peer,
                     trailer->wire_bytes, wire);
      }
      *bytes_out = bytes;
      *wire_out = wire;
      return trailer;
    }
    // The frame's stream bytes: DATA as it came, ZDATA decompressed (bounded).
    std::vector<uint8_t>* block = &buffer;
    if (*type == FrameType::kZData) {
      if (!decompressor) {
        return Error(StatusCode::kCorruption,
                     "{} sent a ZDATA frame at byte {}, but granted no compression", peer, bytes);
      }
      wire += buffer.size();
      // Authenticated already; bounded here (wire_compression.h).
      // Numbered as the tags count frames (HEADER is #0), so errors of both kinds agree.
      const uint64_t index = sock.frames_checked() > 0 ? sock.frames_checked() - 1 : 0;
      if (Status s = decompressor->Decompress(buffer, index, &plain); !s.ok())
        return Error(s.WithContext(fmt::format("stream from {} at byte {}", peer, bytes)));
      block = &plain;
    } else if (*type == FrameType::kData) {
      wire += buffer.size();
    } else {
      return Error(StatusCode::kCorruption, "unexpected {} frame from {} at byte {}",
                   FrameTypeName(*type), peer, bytes);
    }
    const size_t size = block->size();
    if (track && track->frames) {
      // The chain covers the tag as checked (of the ZDATA payload, for a compressed frame)
      // at the frame's stream offset and stream bytes, as the donor's does.
      const ResumeChain after = ResumeChainNext(track->key, track->chain, bytes,
                                                static_cast<uint32_t>(size), sock.last_tag());
      track->frames->Add({bytes, size, track->chain, after});
      track->chain = after;
    }
    if (track && track->skip > 0) {
      // Resumed: this frame starts before the durable point, which holds its first bytes.
      const size_t drop = static_cast<size_t>(std::min<uint64_t>(track->skip, size));
      block->erase(block->begin(), block->begin() + static_cast<ptrdiff_t>(drop));
      track->skip -= drop;
    }
    if (!block->empty()) {
      if (Status s = extractor.WriteBlock(block); !s.ok())
        return Error(s.WithContext(fmt::format("stream from {} at byte {}", peer, bytes)));
    }
    bytes += size;
    last_byte = Clock::now();
    progress();
  }
}

bool HasCheckpoints(const std::string& dir, std::string* path_out) {
  for (const char* name : {"xtrabackup_checkpoints", "mariadb_backup_checkpoints"}) {
    std::string path = dir + "/" + name;
    if (::access(path.c_str(), R_OK) == 0) {
      *path_out = path;
      return true;
    }
  }
  return false;
}

std::string BackupType(const std::string& checkpoints) {
  auto text = files::ReadFile(checkpoints);
  if (!text) return "";
  size_t pos = text->find("backup_type");
  if (pos == std::string::npos) return "";
  size_t eq = text->find('=', pos);
  size_t nl = text->find('\n', pos);
  if (eq == std::string::npos || (nl != std::string::npos && eq > nl)) return "";
  std::string value =
      text->substr(eq + 1, nl == std::string::npos ? std::string::npos : nl - eq - 1);
  while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\r')) value.pop_back();
  return value;
}

Status Prepare(const std::string& staging, const CloneOptions& options) {
  const std::string tool = LocalTool(options);
  std::vector<std::string> argv = {tool, "--prepare", "--use-memory=" + options.use_memory,
                                   "--target-dir=" + staging};
  Log()->info("event=prepare_started dir={} use_memory={}", log::Quote(staging),
              options.use_memory);
  auto run = process::RunCapture(argv, process::ChildEnvironment(), std::nullopt, options.stop);
  if (!run) return run.error().WithContext(fmt::format("running {} --prepare", tool));
  std::string output = run->out + run->err;
  auto tail = [&] {
    std::string t = output.size() > 600 ? output.substr(output.size() - 600) : output;
    while (!t.empty() && t.back() == '\n') t.pop_back();
    return t;
  };
  if (!run->status.ok() || output.find("completed OK!") == std::string::npos) {
    if (output.find("No space left") != std::string::npos ||
        output.find("errno 28") != std::string::npos) {
      return Status(StatusCode::kNoSpace,
                    fmt::format("no space left while preparing {}: {}", staging, tail()));
    }
    return Status(StatusCode::kCorruption, fmt::format("{} --prepare of {} failed ({}): {}", tool,
                                                       staging, run->status.ToString(), tail()));
  }
  std::string checkpoints;
  if (!HasCheckpoints(staging, &checkpoints)) {
    return Status(StatusCode::kCorruption,
                  fmt::format("{} has no checkpoints file after --prepare", staging));
  }
  std::string type = BackupType(checkpoints);
  const char* want = options.flavour == Flavour::kMySQL ? "full-prepared" : "log-applied";
  if (type != want) {
    return Status(StatusCode::kCorruption,
                  fmt::format("{}: backup_type is {} after --prepare, expected {}", checkpoints,
                              log::Printable(type), want));
  }
  return Status::Ok();
}

Status ChownTree(const std::string& dir, const std::optional<FileOwner>& owner) {
  if (!owner) return Status::Ok();  // nothing to hand over
  if (::lchown(dir.c_str(), owner->uid, owner->gid) != 0)
    return ErrnoStatus(errno, fmt::format("chown {}", dir));
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (::lchown(it->path().c_str(), owner->uid, owner->gid) != 0) {
      return ErrnoStatus(errno, fmt::format("chown {}", it->path().string()));
    }
  }
  if (ec) return Status(StatusCode::kIOError, fmt::format("walking {}: {}", dir, ec.message()));
  return Status::Ok();
}

// Fsyncs every file of the staging dir, so the commit marker never lands before the data it
// vouches for. The extractor has fsynced every file it wrote (on its background thread, while
// the stream flowed), but --prepare rewrites files after it (redo applied to the tablespaces,
// new log files), and only this pass, after prepare, covers those; for the files prepare left
// alone it finds nothing dirty and costs a syscall each. The extractor's own fsyncs stay: they
// make `replboot xbstream extract` durable by itself, and in a clone they move the writeback
// into the transfer instead of leaving 2-3 GiB of dirty pages for this pass after prepare.
Status SyncTree(const std::string& dir) {
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    bool is_dir = it->is_directory(ec);
    int fd = ::open(it->path().c_str(), (is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(errno, fmt::format("open {}", it->path().string()));
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return ErrnoStatus(err, fmt::format("fsync {}", it->path().string()));
  }
  if (ec) return Status(StatusCode::kIOError, fmt::format("walking {}: {}", dir, ec.message()));
  return files::FsyncDir(dir);
}

}  // namespace

std::string LocalTool(const CloneOptions& options) {
  if (!options.tool.empty()) return options.tool;
  return DefaultTool(options.flavour);
}

namespace {

// A datadir a clone may go into: no staging or old dir left (the caller settles those:
// datadir.h), and no data unless options.force_reclone.
Status CheckCleanSlate(const CloneOptions& options) {
  auto state = InspectDatadir(options.datadir);
  if (!state) return state.error();
  if (state->staging != DirState::kAbsent || state->old_present) {
    return Status(StatusCode::kInternal,
                  fmt::format("{} has a staging or old dir left: settle the datadir before "
                              "cloning", options.datadir));
  }
  if ((state->datadir == DirState::kData || state->datadir == DirState::kCommitted) &&
      !options.force_reclone) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("{} already holds data; use --force-reclone to replace it",
                              options.datadir));
  }
  return Status::Ok();
}

// A donor's stream up to its first DATA frame: connected, authenticated, HEADER read.
struct OpenedStream {
  AuthenticatedConnection connection;
  std::string peer;
  StreamHeader header;
  uint64_t wire_bytes = 0;  // once received: what arrived on the wire for the stream
};

Result<OpenedStream> OpenStream(const Endpoint& donor, const CloneOptions& options,
                                const std::optional<ResumeRequest>& resume = std::nullopt) {
  auto connection = ConnectAuthenticated(donor, resume ? HelloMode::kResume : HelloMode::kBackup,
                                         options, std::nullopt, resume);
  if (!connection) return Error(connection.error());
  net::Socket* sock = &connection->socket;
  const std::string peer = sock->peer();
  Log()->info("event=clone_connected peer={} donor_node={} donor_ordinal={} datadir={}", peer,
              connection->server.name.empty() ? "-" : connection->server.name,
              connection->server.ordinal ? std::to_string(*connection->server.ordinal) : "-",
              log::Quote(options.datadir));
  auto header = ReadHeader(*sock, options);
  if (!header) return Error(header.error());
  // The grant must answer what this HELLO asked (none after a version fallback).
  if (Status s = CheckGrant(*header, connection->asked); !s.ok())
    return Error(s.WithContext(fmt::format("stream header from {}", peer)));
  Log()->info(
      "event=clone_header peer={} flavour={} server_version={} tool_version={} estimated_bytes={} "
      "run={} run_receivers={}",
      peer, header->flavour, log::Quote(header->server_version), log::Quote(header->tool_version),
      header->estimated_bytes, header->run_id, header->run_receivers);
  Log()->info("event=clone_compression peer={} asked={} granted={}", peer,
              CompressRequestText(connection->asked), GrantText(*header));
  return OpenedStream{std::move(*connection), peer, std::move(*header)};
}

// The DATA frames into `sink` up to a TRAILER that says the donor's tool succeeded and sent
// exactly what arrived. The sink is not finished here.
Result<uint64_t> ReceiveWhole(OpenedStream& opened, StreamSink& sink, const CloneOptions& options,
                              ChainTrack* track = nullptr, uint64_t start = 0) {
  net::Socket& sock = opened.connection.socket;
  const std::string& peer = opened.peer;
  uint64_t bytes = start;
  auto trailer = Receive(sock, sink, opened.header, options, &bytes, &opened.wire_bytes, track);
  if (!trailer) return Error(trailer.error());
  sock.Close();
  if (!trailer->ok()) {
    return Error(StatusCode::kUnavailable, "the backup on {} failed ({}): {}", peer,
                 process::ExitStatus{trailer->exit_code, trailer->signal}.ToString(),
                 trailer->last_line);
  }
  if (trailer->bytes != bytes) {
    return Error(StatusCode::kCorruption, "{} says it sent {} bytes, {} arrived", peer,
                 trailer->bytes, bytes);
  }
  return bytes - start;
}

}  // namespace

Result<FetchedStream> FetchStream(const Endpoint& donor, const CloneOptions& options,
                                  const MakeSink& make_sink) {
  const auto start = Clock::now();
  auto opened = OpenStream(donor, options);
  if (!opened) return Error(opened.error());
  if (Status s = Preflight(opened->peer, opened->header, options); !s.ok()) return Error(s);
  FetchedStream fetched;
  fetched.peer = opened->peer;
  fetched.donor_node = opened->connection.server;
  fetched.header = opened->header;
  auto sink = make_sink(fetched);
  if (!sink) return Error(sink.error());
  Report(options, Event("streaming", fetched.peer, 0, fetched.header));
  auto bytes = ReceiveWhole(*opened, **sink, options);
  if (!bytes) {
    (*sink)->Abort();
    return Error(bytes.error());
  }
  if (Status s = (*sink)->Finish(); !s.ok())
    return Error(s.WithContext(fmt::format("stream from {}", fetched.peer)));
  fetched.bytes = *bytes;
  fetched.seconds = Seconds(start);
  return fetched;
}

namespace {

// A failure after which a staging dir with a durable point is kept for the next attempt to
// resume from: the link broke, the donor went away, replboot is stopping. A stream that failed
// its checks (tags, checksums) or a disk that failed is never resumed from.
bool KeepsDurablePoint(const Status& s) {
  return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kTimeout ||
         s.code() == StatusCode::kCancelled;
}

// CommitStream, and for a clone with durable points (`points`: recorded while the stream
// flows; with points->resume_from, the staging dir is already back at that point and the
// stream goes on from there).
Result<CloneResult> CommitStreamImpl(const CloneOptions& options, const std::string& source,
                                     const StreamHeader& header, const FeedStream& feed,
                                     const std::shared_ptr<DurablePoints>& points) {
  const auto start = Clock::now();
  const std::string staging = StagingPath(options.datadir);
  const bool resuming = points && points->resume_from;

  // A clean slate: the caller settled leftovers (datadir.h), so they never mix with this one.
  if (!resuming) REPLBOOT_RETURN_IF_ERROR(CheckCleanSlate(options));
  if (Status s = Preflight(source, header, options); !s.ok()) return Error(s);
  Report(options, Event("streaming", source, resuming ? points->resume_from->offset : 0, header));

  struct DiscardStaging {
    std::string dir;
    bool keep = false;
    ~DiscardStaging() {
      if (!keep) (void)files::RemoveAll(dir);
    }
  } discard{staging};
  if (!resuming && ::mkdir(staging.c_str(), 0750) != 0)
    return Error(ErrnoStatus(errno, fmt::format("mkdir {}", staging)));

  auto native = MakeExtractor(staging, options.flavour, options.reserved_names, points);
  if (!native) return Error(native.error());
  std::unique_ptr<StreamExtractor> extractor =
      MakePipelined(std::move(*native), options.pipeline_bytes);
  auto fed = feed(*extractor);
  if (!fed) {
    extractor->Abort();
    if (points && points->durable.load() > 0 && KeepsDurablePoint(fed.error())) {
      discard.keep = true;
      Log()->warn("event=clone_interrupted peer={} durable_offset={} points={} staging={} "
                  "note={}",
                  source, points->durable.load(), points->points.load(), log::Quote(staging),
                  log::Quote("kept: the next attempt resumes from the durable point"));
    }
    return Error(fed.error());
  }
  const uint64_t bytes = *fed;
  if (Status s = extractor->Finish(); !s.ok())
    return Error(s.WithContext(fmt::format("stream from {}", source)));
  std::string checkpoints;
  if (!HasCheckpoints(staging, &checkpoints)) {
    return Error(StatusCode::kCorruption, "the stream from {} has no xtrabackup_checkpoints file",
                 source);
  }
  CloneResult result;
  result.donor = source;
  result.datadir = options.datadir;
  result.header = header;
  result.bytes = bytes;
  result.fetch_seconds = Seconds(start);
  Log()->info("event=clone_received peer={} bytes={} elapsed_ms={}", source, bytes,
              static_cast<int64_t>(result.fetch_seconds * 1000));

  const CloneProgressEvent received = Event("preparing", source, bytes, header);
  Report(options, received);
  auto prepare_start = Clock::now();
  if (Status s = Prepare(staging, options); !s.ok()) return Error(s);
  result.prepare_seconds = Seconds(prepare_start);
  Log()->info("event=prepare_done dir={} elapsed_ms={}", log::Quote(staging),
              static_cast<int64_t>(result.prepare_seconds * 1000));

  CloneProgressEvent committing = received;
  committing.phase = "committing";
  Report(options, committing);
  auto commit_start = Clock::now();
  if (Status s = ChownTree(staging, options.owner); !s.ok()) return Error(s);
  if (Status s = SyncTree(staging); !s.ok()) return Error(s);
  // The id travels in the HEADER (the tools do not copy it): written before the marker, so a
  // committed clone always carries its cluster's id.
  if (!header.cluster_id.empty()) {
    if (Status s = WriteClusterId(staging, header.cluster_id, options.owner); !s.ok())
      return Error(s.WithContext("writing the cluster id into the clone"));
  }
  if (options.before_commit) {
    if (Status s = options.before_commit(staging, header); !s.ok()) return Error(s);
  }
  nlohmann::json marker;
  marker["donor"] = source;
  marker["server_version"] = header.server_version;
  marker["flavour"] = header.flavour;
  marker["cluster_id"] = header.cluster_id;
  marker["bytes"] = bytes;
  marker["replace"] = options.force_reclone;
  marker["committed_at"] = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  if (Status s = WriteMarker(
          staging, marker.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
      !s.ok()) {
    return Error(s);
  }
  discard.keep = true;  // committed: from here on a restart finishes the swap
  if (Status s = FinishSwap(options.datadir); !s.ok()) return Error(s);
  result.commit_seconds = Seconds(commit_start);
  Log()->info(
      "event=clone_done peer={} datadir={} bytes={} fetch_s={:.1f} prepare_s={:.1f} "
      "commit_s={:.1f}",
      source, log::Quote(options.datadir), bytes, result.fetch_seconds, result.prepare_seconds,
      result.commit_seconds);
  CloneProgressEvent done = received;
  done.phase = "done";
  Report(options, done);
  return result;
}

}  // namespace

Result<CloneResult> CommitStream(const CloneOptions& options, const std::string& source,
                                 const StreamHeader& header, const FeedStream& feed) {
  return CommitStreamImpl(options, source, header, feed, nullptr);
}

namespace {

// A clone committed from `opened`: who sent it and what it took on the wire (a resumed
// stream's wire bytes are its last session's).
void Finished(const OpenedStream& opened, CloneResult* result) {
  result->donor_node = opened.connection.server;
  result->wire_bytes = opened.wire_bytes;
  Log()->info("event=clone_wire peer={} compression={} bytes={} wire_bytes={} ratio={:.2f}",
              opened.peer, GrantText(opened.header), result->bytes, result->wire_bytes,
              result->wire_bytes > 0
                  ? static_cast<double>(result->bytes) / static_cast<double>(result->wire_bytes)
                  : 0.0);
}

// Durable points for a stream whose HEADER offers resume (a resume_id and checkpoint_bytes);
// none from a donor without it (or with backup.resume_window = 0).
std::shared_ptr<DurablePoints> PointsFor(const OpenedStream& opened, const std::string& header_payload,
                                         const CloneOptions& options) {
  const StreamHeader& h = opened.header;
  ResumeId id{};
  if (h.resume_id.empty() || h.checkpoint_bytes == 0 || !HexDecode(h.resume_id, id)) return nullptr;
  auto points = std::make_shared<DurablePoints>();
  points->base.donor = opened.peer;
  points->base.header = header_payload;
  points->base.run_id = h.run_id;
  points->base.resume_id = id;
  points->base.checkpoint_bytes =
      std::clamp(h.checkpoint_bytes, kMinCheckpointBytes, kMaxCheckpointBytes);
  points->frames = std::make_shared<FrameLog>();
  (void)options;
  return points;
}

// A clone that goes on from the durable point in its staging dir. Errors: kNotFound when the
// point cannot be used (the donor refused it, or it does not check out): the caller discards
// the dir and clones afresh; anything else as CloneFrom's (the dir kept when it still holds a
// point and the failure was the link's).
Result<CloneResult> ResumeFrom(const Endpoint& donor, const CloneOptions& options) {
  const std::string staging = StagingPath(options.datadir);
  auto state = LoadResumePoint(staging);
  if (!state) {
    return Error(StatusCode::kNotFound, "its durable point cannot be used: {}",
                 state.error().message());
  }
  auto original = DecodeStreamHeader(state->header);
  if (!original) return Error(StatusCode::kNotFound, "bad header in the durable point");
  ResumeRequest request;
  request.resume_id = state->resume_id;
  request.run_id = state->run_id;
  request.frame_offset = state->frame_offset;
  request.chain = state->chain;
  Log()->info("event=clone_resume_requested peer={} run={} offset={} frame_offset={} first_donor={}",
              discovery::EndpointText(donor), state->run_id, state->offset, state->frame_offset,
              state->donor);
  auto opened = OpenStream(donor, options, request);
  if (!opened) {
    const Status& e = opened.error();
    if (e.message().find("(resume_refused)") != std::string::npos ||
        e.message().find("(protocol)") != std::string::npos ||
        e.code() == StatusCode::kCorruption) {
      return Error(StatusCode::kNotFound, "{}", e.message());
    }
    return Error(e);
  }
  const StreamHeader& h = opened->header;
  if (h.resume_id != original->resume_id || h.run_id != original->run_id ||
      h.resumed_from != state->frame_offset) {
    return Error(StatusCode::kNotFound,
                 "{} resumed another stream (run {} from byte {}, we asked for run {} from {})",
                 opened->peer, h.run_id, h.resumed_from, state->run_id, state->frame_offset);
  }
  auto points = std::make_shared<DurablePoints>();
  points->base = *state;
  points->base.open_files.clear();
  points->base.donor = opened->peer;
  points->frames = std::make_shared<FrameLog>();
  points->resume_from = *state;
  points->durable.store(state->offset);
  ChainTrack track;
  track.key = ResumeKey(options.secret, state->resume_id);
  track.chain = state->chain;
  track.frames = points->frames;
  track.skip = state->offset - state->frame_offset;
  const uint64_t start = state->frame_offset;
  auto result = CommitStreamImpl(
      options, opened->peer, *original,
      [&](StreamSink& sink) -> Result<uint64_t> {
        auto got = ReceiveWhole(*opened, sink, options, &track, start);
        if (got) {
          Log()->info("event=clone_resumed peer={} run={} resumed_from={} durable_offset={} "
                      "bytes_after_drop={} wire_bytes_after_drop={} resent_bytes={} "
                      "stream_bytes={} compression={}",
                      opened->peer, state->run_id, start, state->offset, *got,
                      opened->wire_bytes, state->offset - start, start + *got,
                      GrantText(opened->header));
        }
        return got;
      },
      points);
  if (result) Finished(*opened, &*result);
  return result;
}

}  // namespace

Result<CloneResult> CloneFrom(const Endpoint& donor, const CloneOptions& options) {
  const std::string staging = StagingPath(options.datadir);
  if (HasResumePoint(staging)) {
    auto resumed = ResumeFrom(donor, options);
    if (resumed || resumed.error().code() != StatusCode::kNotFound) return resumed;
    // A donor that restarted, a window that closed, a point that does not check out: the
    // staging dir goes and the clone starts afresh, now.
    Log()->warn("event=clone_resume_refused peer={} reason={} action=full_clone",
                discovery::EndpointText(donor), log::Quote(resumed.error().message()));
    if (Status s = DiscardStaging(options.datadir); !s.ok()) return Error(s);
  }
  // A datadir that is not a clean slate is refused before the donor starts a backup for us.
  REPLBOOT_RETURN_IF_ERROR(CheckCleanSlate(options));
  auto opened = OpenStream(donor, options);
  if (!opened) return Error(opened.error());
  auto points = PointsFor(*opened, EncodeStreamHeader(opened->header), options);
  ChainTrack track;
  if (points) {
    track.key = ResumeKey(options.secret, points->base.resume_id);
    track.chain = ResumeChainStart(track.key);
    track.frames = points->frames;
  }
  auto result = CommitStreamImpl(options, opened->peer, opened->header,
                                 [&](StreamSink& sink) {
                                   return ReceiveWhole(*opened, sink, options,
                                                       points ? &track : nullptr);
                                 },
                                 points);
  if (result) Finished(*opened, &*result);
  return result;
}

Result<ProbeInfo> ProbePeer(const Endpoint& donor, const CloneOptions& options,
                            std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto connection = ConnectAuthenticated(donor, HelloMode::kProbe, options, deadline);
  if (!connection) return Error(connection.error());
  net::Socket* sock = &connection->socket;
  const std::string peer = sock->peer();
  auto left =
      std::max(milliseconds(1), std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
  auto frame = sock->ReadControlFrame(left);
  if (!frame) return Error(frame.error().WithContext(fmt::format("probing {}", peer)));
  if (frame->type == FrameType::kError) return Error(ServerErrorStatus(peer, frame->payload));
  if (frame->type != FrameType::kProbeInfo) {
    return Error(StatusCode::kCorruption, "{} answered the probe with {}", peer,
                 FrameTypeName(frame->type));
  }
  auto info = DecodeProbeInfo(frame->payload);
  if (!info) return Error(info.error().WithContext(fmt::format("from {}", peer)));
  info->node = std::move(connection->server);
  return info;
}

Status DonorRefusal(const std::string& peer, const ProbeInfo& info, const CloneOptions& options) {
  if (!info.error.empty()) {
    return Status(StatusCode::kUnavailable,
                  fmt::format("{} cannot serve a backup: {}", peer, info.error));
  }
  if (!options.expected_cluster_id.empty() && info.cluster_id != options.expected_cluster_id) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("{} holds data of cluster {}, not this node's {}", peer,
                              info.cluster_id.empty() ? "(none)" : info.cluster_id,
                              options.expected_cluster_id));
  }
  if (options.require_ready_donor) {
    if (info.diverged) {
      return Status(StatusCode::kUnavailable,
                    fmt::format("{} is no donor: it diverged from the primary ({})", peer,
                                info.not_ready_reason.empty() ? "errant transactions"
                                                              : info.not_ready_reason));
    }
    if (!info.ready) {
      return Status(StatusCode::kUnavailable,
                    fmt::format("{} is no donor yet: {}", peer,
                                info.not_ready_reason.empty() ? "not ready"
                                                              : info.not_ready_reason));
    }
  }
  // The donor busy with the run our staging dir's durable point belongs to: a resume is
  // not a new run and is admitted (a refused one falls back to a full clone there or later).
  if (info.busy && !HasResumePoint(StagingPath(options.datadir))) {
    return Status(StatusCode::kUnavailable,
                  fmt::format("{} is busy: {} backup(s) running, max_concurrent={}", peer,
                              info.active, info.max_concurrent));
  }
  return CheckCompatible(peer, info.flavour, info.server_version, options);
}

Result<ProbeInfo> ProbeDonor(const Endpoint& donor, const CloneOptions& options,
                             std::chrono::milliseconds timeout) {
  auto info = ProbePeer(donor, options, timeout);
  if (!info) return info;
  if (Status s = DonorRefusal(discovery::EndpointText(donor), *info, options); !s.ok())
    return Error(s);
  return info;
}

Result<CloneResult> CloneFromPeers(const std::function<std::vector<DonorEndpoint>()>& peers_fn,
                                   const CloneOptions& options, const RetryPolicy& policy) {
  std::map<Endpoint, int> auth_skip;  // peer → rounds left to skip
  milliseconds backoff = policy.first_backoff;
  Status last(StatusCode::kUnavailable, "no peer to clone from");
  int attempts = 0;
  std::string last_error;
  // Each attempt's events carry the attempt number and the previous attempt's error.
  CloneOptions attempt_options = options;
  if (options.on_progress) {
    attempt_options.on_progress = [&](const CloneProgressEvent& event) {
      CloneProgressEvent e = event;
      e.attempt = attempts;
      if (e.error.empty()) e.error = last_error;
      options.on_progress(e);
    };
  }
  for (int round = 1; policy.max_rounds == 0 || round <= policy.max_rounds; ++round) {
    Report(attempt_options, Event("discovering"));
    auto peers = peers_fn();
    // An interrupted clone asks the donor it was streaming from first: that one may hold the
    // rest of its run.
    if (HasResumePoint(StagingPath(options.datadir))) {
      auto text = files::ReadFile(StagingPath(options.datadir) + "/" + std::string(kResumeStateName));
      auto state = text ? ParseResumeState(*text) : Result<ResumeState>(Error(text.error()));
      if (state) {
        std::stable_partition(peers.begin(), peers.end(), [&](const DonorEndpoint& d) {
          return discovery::EndpointText(d.endpoint) == state->donor;
        });
      }
    }
    for (const auto& [endpoint, ordinal] : peers) {
      if (options.stop.stop_requested()) return Error(StatusCode::kCancelled, "clone cancelled");
      const std::string peer = discovery::EndpointText(endpoint);
      if (auto it = auth_skip.find(endpoint); it != auth_skip.end() && it->second > 0) {
        --it->second;
        continue;
      }
      ++attempts;
      attempt_options.expected_ordinal = ordinal ? ordinal : options.expected_ordinal;
      auto result = CloneFrom(endpoint, attempt_options);
      if (result) return result;
      last = result.error();
      last_error = last.message();
      Report(attempt_options, Event("failed", peer));
      Log()->warn("event=clone_attempt_failed peer={} round={} code={} error={}", peer, round,
                  StatusCodeName(last.code()), log::Quote(last.message()));
      if (last.code() == StatusCode::kPermissionDenied) auth_skip[endpoint] = policy.auth_skip_rounds;
      if (last.code() == StatusCode::kNoSpace || last.code() == StatusCode::kCancelled)
        return Error(last);
      if (last.code() == StatusCode::kInvalidArgument &&
          last.message().find("--force-reclone") != std::string::npos) {
        return Error(last);
      }
    }
    if (policy.max_rounds != 0 && round == policy.max_rounds) break;
    Log()->info("event=clone_backoff round={} wait_ms={}", round, backoff.count());
    // Sleeps the backoff, woken at once by a stop request.
    std::mutex mu;
    std::condition_variable_any wake;
    std::unique_lock lock(mu);
    if (wake.wait_for(lock, options.stop, backoff, [] { return false; }) ||
        options.stop.stop_requested()) {
      return Error(StatusCode::kCancelled, "clone cancelled");
    }
    backoff = std::min(backoff * 2, policy.max_backoff);
  }
  return Error(last.WithContext("clone failed from every peer"));
}

}  // namespace replboot::clone
