#include "extract.h"

#include <mutex>
#include <thread>
#include <vector>

#include "replboot/backup/xbstream_extractor.h"
#include "replboot/backup/xbstream_reader.h"
#include "replboot/base/bounded_queue.h"
#include "replboot/base/datadir_files.h"

namespace replboot::clone {

namespace {

// Unpacks in this process as the bytes arrive (backup/'s push parser and fsyncing
// extractor): no temporary copy of the stream, no extra pipe hop, no mbstream child.
class NativeExtractor : public StreamExtractor {
 public:
  static Result<std::unique_ptr<StreamExtractor>> Create(
      const std::string& dir, Flavour flavour, const std::vector<std::string>& reserved_names) {
    backup::ExtractOptions options;
    options.flavour = flavour;
    options.reserved_names = reserved_names;
    // Every file the node keeps in its datadir, e.g. the commit marker or the cluster id
    // (which comes from the HEADER, never the stream).
    options.reserved_names.insert(options.reserved_names.end(), datadir_files::kAll.begin(),
                                  datadir_files::kAll.end());
    auto sink = backup::XbstreamExtractor::Create(dir, options);
    if (!sink) return Error(sink.error());
    return std::unique_ptr<StreamExtractor>(new NativeExtractor(std::move(*sink), flavour));
  }

  Status Write(std::span<const uint8_t> bytes) override { return reader_.Feed(bytes); }

  Status Finish() override {
    if (Status s = reader_.Finish(); !s.ok()) return s;
    return sink_->Commit();
  }

  void Abort() override {}  // the caller wipes the directory; descriptors close with the sink

 private:
  NativeExtractor(std::unique_ptr<backup::XbstreamExtractor> sink, Flavour flavour)
      : sink_(std::move(sink)), reader_(ReaderOptions(flavour), sink_.get()) {}
  static backup::XbstreamReader::Options ReaderOptions(Flavour flavour) {
    backup::XbstreamReader::Options options;
    options.flavour = flavour;
    return options;
  }

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
    const std::string& dir, Flavour flavour, const std::vector<std::string>& reserved_names) {
  return NativeExtractor::Create(dir, flavour, reserved_names);
}

}  // namespace replboot::clone
