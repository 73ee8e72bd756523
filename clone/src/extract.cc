#include "extract.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "replboot/backup/xbstream_extractor.h"
#include "replboot/backup/xbstream_reader.h"

namespace replboot::clone {

namespace {

// Unpacks in this process as the bytes arrive (backup/'s push parser and fsyncing
// extractor): no temporary copy of the stream, no extra pipe hop, no mbstream child.
class NativeExtractor : public StreamExtractor {
 public:
  static Result<std::unique_ptr<StreamExtractor>> Create(const std::string& dir,
                                                         backup::Flavour flavour) {
    backup::ExtractOptions options;
    options.flavour = flavour;
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
  NativeExtractor(std::unique_ptr<backup::XbstreamExtractor> sink, backup::Flavour flavour)
      : sink_(std::move(sink)), reader_(ReaderOptions(flavour), sink_.get()) {}
  static backup::XbstreamReader::Options ReaderOptions(backup::Flavour flavour) {
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
      : inner_(std::move(inner)), max_queued_(max_queued), thread_([this] { Run(); }) {}
  ~PipelinedExtractor() override { Abort(); }

  Status Write(std::span<const uint8_t> bytes) override {
    std::unique_lock lock(mu_);
    space_.wait(lock, [&] {
      return !error_.ok() || queued_ == 0 || queued_ + bytes.size() <= max_queued_;
    });
    if (!error_.ok()) return error_;
    queue_.emplace_back(bytes.begin(), bytes.end());
    queued_ += bytes.size();
    ready_.notify_one();
    return Status::Ok();
  }

  Status Finish() override {
    {
      std::lock_guard lock(mu_);
      ended_ = true;
      ready_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
    if (!error_.ok()) return error_;
    return inner_->Finish();
  }

  void Abort() override {
    {
      std::lock_guard lock(mu_);
      aborted_ = true;
      ready_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
    inner_->Abort();
  }

 private:
  void Run() {
    for (;;) {
      std::vector<uint8_t> buffer;
      {
        std::unique_lock lock(mu_);
        ready_.wait(lock, [&] { return aborted_ || ended_ || !queue_.empty(); });
        if (aborted_ || queue_.empty()) return;  // ended_ with nothing left
        buffer = std::move(queue_.front());
        queue_.pop_front();
      }
      Status s = inner_->Write(buffer);
      std::lock_guard lock(mu_);
      queued_ -= buffer.size();
      if (!s.ok()) {
        error_ = s;
        queue_.clear();
        queued_ = 0;
      }
      space_.notify_one();
      if (!s.ok()) return;
    }
  }

  std::unique_ptr<StreamExtractor> inner_;
  const size_t max_queued_;
  std::mutex mu_;
  std::condition_variable ready_;
  std::condition_variable space_;
  std::deque<std::vector<uint8_t>> queue_;
  size_t queued_ = 0;
  bool ended_ = false;
  bool aborted_ = false;
  Status error_;
  std::thread thread_;  // last: starts after every member it uses exists
};

}  // namespace

std::unique_ptr<StreamExtractor> MakePipelined(std::unique_ptr<StreamExtractor> inner,
                                               size_t max_queued) {
  return std::make_unique<PipelinedExtractor>(std::move(inner), max_queued);
}

Result<std::unique_ptr<StreamExtractor>> MakeExtractor(const std::string& dir,
                                                       const std::string& flavour) {
  auto f = backup::ParseFlavour(flavour);
  if (!f) return Error(f.error());
  return NativeExtractor::Create(dir, *f);
}

}  // namespace replboot::clone
