#include "extract.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>
#include <thread>
#include <vector>

#include "replboot/base/files.h"
#include "replboot/base/log.h"

#include "replboot/backup/xbstream_extractor.h"
#include "replboot/backup/xbstream_reader.h"
#include "replboot/base/bounded_queue.h"
#include "replboot/base/datadir_files.h"

namespace replboot::clone {

namespace {

// Records durable points (resume.h) for one extraction, on the unpacking thread, called
// back by the extractor at chunk boundaries.
class Checkpointer {
 public:
  Checkpointer(std::string dir, std::shared_ptr<DurablePoints> points)
      : dir_(std::move(dir)), points_(std::move(points)) {}
  ~Checkpointer() {
    if (dir_fd_ >= 0) ::close(dir_fd_);
    if (journal_fd_ >= 0) ::close(journal_fd_);
  }

  Status Open() {
    dir_fd_ = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd_ < 0) return ErrnoStatus(errno, "open " + dir_);
    const std::string name(kResumeJournalName);
    int flags = O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC;
    if (!points_->resume_from) flags |= O_CREAT | O_EXCL;
    journal_fd_ = ::openat(dir_fd_, name.c_str(), flags, 0600);
    if (journal_fd_ < 0) return ErrnoStatus(errno, fmt::format("open {}/{}", dir_, name));
    if (points_->resume_from) {
      last_ = points_->resume_from->offset;
      journal_bytes_ = points_->resume_from->journal_bytes;
    }
    interval_ = std::max(points_->base.checkpoint_bytes, kMinCheckpointBytes);
    return Status::Ok();
  }

  void Attach(backup::XbstreamExtractor* sink, backup::XbstreamReader* reader) {
    sink_ = sink;
    reader_ = reader;
  }

  Status OnChunkEnd(uint64_t offset) {
    if (!force_ && offset - last_ < interval_) return Status::Ok();
    auto located = points_->frames->Locate(offset);
    if (!located) return Status::Ok();  // not on record yet: the next boundary
    std::vector<backup::PartialFile> open;
    std::string journal;
    REPLBOOT_RETURN_STATUS_IF_ERROR(sink_->MakeDurable(&open, &journal));
    if (!journal.empty()) {
      REPLBOOT_RETURN_STATUS_IF_ERROR(files::WriteAll(
          journal_fd_, {reinterpret_cast<const uint8_t*>(journal.data()), journal.size()},
          dir_ + "/" + std::string(kResumeJournalName)));
      if (::fdatasync(journal_fd_) != 0)
        return ErrnoStatus(errno, fmt::format("fsync {}/{}", dir_, kResumeJournalName));
      journal_bytes_ += journal.size();
    }
    const auto& reading = reader_->open_files();
    if (reading.size() != open.size() || open.size() > kMaxResumeOpenFiles)
      return Status::Ok();  // the two do not agree here: no point at this boundary
    ResumeState state = points_->base;
    state.offset = offset;
    state.frame_offset = located->first;
    state.chain = located->second;
    state.journal_bytes = journal_bytes_;
    for (const auto& f : open) {
      auto it = reading.find(f.path);
      if (it == reading.end()) return Status::Ok();
      state.open_files.push_back({f.path, it->second, f.written_end, f.logical_end});
    }
    REPLBOOT_RETURN_STATUS_IF_ERROR(files::WriteFileAtomicAt(
        dir_fd_, dir_, std::string(kResumeStateName), EncodeResumeState(state), 0600));
    last_ = offset;
    force_ = false;
    points_->durable.store(offset);
    points_->points.fetch_add(1);
    return Status::Ok();
  }

  // A rename or delete is about to change the dir: no point from before it may be used.
  Status Drop() {
    force_ = true;
    points_->durable.store(0);
    return Remove(kResumeStateName);
  }

  // The stream is whole and durable: the point goes before --prepare changes the files.
  Status Done() {
    points_->durable.store(0);
    REPLBOOT_RETURN_STATUS_IF_ERROR(Remove(kResumeStateName));
    return Remove(kResumeJournalName);
  }

 private:
  Status Remove(std::string_view name) {
    if (::unlinkat(dir_fd_, std::string(name).c_str(), 0) != 0 && errno != ENOENT)
      return ErrnoStatus(errno, fmt::format("remove {}/{}", dir_, name));
    if (::fsync(dir_fd_) != 0) return ErrnoStatus(errno, "fsync " + dir_);
    return Status::Ok();
  }

  const std::string dir_;
  std::shared_ptr<DurablePoints> points_;
  backup::XbstreamExtractor* sink_ = nullptr;
  backup::XbstreamReader* reader_ = nullptr;
  int dir_fd_ = -1;
  int journal_fd_ = -1;
  uint64_t interval_ = kMinCheckpointBytes;
  uint64_t last_ = 0;
  uint64_t journal_bytes_ = 0;
  bool force_ = false;
};

// Unpacks in this process as the bytes arrive (backup/'s push parser and fsyncing
// extractor): no temporary copy of the stream, no extra pipe hop, no mbstream child.
class NativeExtractor : public StreamExtractor {
 public:
  static Result<std::unique_ptr<StreamExtractor>> Create(
      const std::string& dir, Flavour flavour, const std::vector<std::string>& reserved_names,
      std::shared_ptr<DurablePoints> points) {
    backup::ExtractOptions options;
    options.flavour = flavour;
    options.reserved_names = reserved_names;
    // Every file the node keeps in its datadir, e.g. the commit marker or the cluster id
    // (which comes from the HEADER, never the stream).
    options.reserved_names.insert(options.reserved_names.end(), datadir_files::kAll.begin(),
                                  datadir_files::kAll.end());
    std::unique_ptr<Checkpointer> checkpointer;
    if (points) {
      checkpointer = std::make_unique<Checkpointer>(dir, points);
      REPLBOOT_RETURN_IF_ERROR(checkpointer->Open());
      Checkpointer* c = checkpointer.get();
      options.on_chunk_end = [c](uint64_t offset) { return c->OnChunkEnd(offset); };
      options.before_irreversible = [c] { return c->Drop(); };
    }
    auto sink = backup::XbstreamExtractor::Create(dir, options);
    if (!sink) return Error(sink.error());
    std::unique_ptr<NativeExtractor> extractor(
        new NativeExtractor(std::move(*sink), flavour, std::move(checkpointer)));
    if (points && points->resume_from) {
      const ResumeState& from = *points->resume_from;
      std::vector<backup::PartialFile> partial;
      backup::XbstreamReader::OpenFiles reading;
      for (const auto& f : from.open_files) {
        partial.push_back({f.path, f.written, f.logical});
        reading.emplace(f.path, f.next);
      }
      REPLBOOT_RETURN_IF_ERROR(extractor->sink_->ResumeFiles(partial));
      REPLBOOT_RETURN_IF_ERROR(extractor->reader_.ResumeAt(from.offset, std::move(reading)));
    }
    return std::unique_ptr<StreamExtractor>(std::move(extractor));
  }

  Status Write(std::span<const uint8_t> bytes) override { return reader_.Feed(bytes); }

  Status Finish() override {
    if (Status s = reader_.Finish(); !s.ok()) return s;
    if (Status s = sink_->Commit(); !s.ok()) return s;
    return checkpointer_ ? checkpointer_->Done() : Status::Ok();
  }

  void Abort() override {}  // the caller wipes the directory; descriptors close with the sink

 private:
  NativeExtractor(std::unique_ptr<backup::XbstreamExtractor> sink, Flavour flavour,
                  std::unique_ptr<Checkpointer> checkpointer)
      : checkpointer_(std::move(checkpointer)),
        sink_(std::move(sink)),
        reader_(ReaderOptions(flavour), sink_.get()) {
    if (checkpointer_) checkpointer_->Attach(sink_.get(), &reader_);
  }
  static backup::XbstreamReader::Options ReaderOptions(Flavour flavour) {
    backup::XbstreamReader::Options options;
    options.flavour = flavour;
    return options;
  }

  // Outlives the sink, whose callbacks use it.
  std::unique_ptr<Checkpointer> checkpointer_;
  std::unique_ptr<backup::XbstreamExtractor> sink_;
  backup::XbstreamReader reader_;
};

class PipelinedExtractor : public StreamExtractor {
 public:
  PipelinedExtractor(std::unique_ptr<StreamExtractor> inner, size_t max_queued)
      : inner_(std::move(inner)), queue_(max_queued), thread_([this] { Run(); }) {}
  ~PipelinedExtractor() override { Abort(); }

  Status Write(std::span<const uint8_t> bytes) override {
    if (queue_.Push(bytes)) return Status::Ok();
    return WorkerError();
  }

  Status WriteBlock(std::vector<uint8_t>* block) override {
    if (queue_.PushOwned(block)) return Status::Ok();
    return WorkerError();
  }

  Status Finish() override {
    queue_.EndInput();
    if (thread_.joinable()) thread_.join();
    if (Status s = WorkerError(); !s.ok()) return s;
    return inner_->Finish();
  }

  void Abort() override {
    queue_.Close();
    if (thread_.joinable()) thread_.join();
    inner_->Abort();
  }

 private:
  void Run() {
    std::vector<uint8_t> buffer;
    while (queue_.Pop(&buffer)) {
      if (Status s = inner_->Write(buffer); !s.ok()) {
        {
          std::lock_guard lock(mu_);
          error_ = s;
        }
        queue_.Close();  // after error_ is set: wakes Write(), which then returns it
        return;
      }
    }
  }

  // The inner extractor's error once the queue was closed, else (closed by Abort) a
  // cancellation.
  Status WorkerError() {
    std::lock_guard lock(mu_);
    if (!error_.ok()) return error_;
    if (queue_.closed()) return Status(StatusCode::kCancelled, "extraction aborted");
    return Status::Ok();
  }

  std::unique_ptr<StreamExtractor> inner_;
  BoundedByteQueue queue_;
  std::mutex mu_;
  Status error_;
  std::thread thread_;  // last: starts after every member it uses exists
};

}  // namespace

std::unique_ptr<StreamExtractor> MakePipelined(std::unique_ptr<StreamExtractor> inner,
                                               size_t max_queued) {
  return std::make_unique<PipelinedExtractor>(std::move(inner), max_queued);
}

Result<std::unique_ptr<StreamExtractor>> MakeExtractor(
    const std::string& dir, Flavour flavour, const std::vector<std::string>& reserved_names,
    std::shared_ptr<DurablePoints> points) {
  return NativeExtractor::Create(dir, flavour, reserved_names, std::move(points));
}

}  // namespace replboot::clone
