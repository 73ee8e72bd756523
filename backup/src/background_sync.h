// Writeback and fsync of extracted files on a thread of their own (private to the extractor).
//
// Why: the extractor's thread is the bound of an extraction (checksum, copying into the page
// cache). Starting writeback (sync_file_range) and waiting in fsync on that thread put the
// disk's latency and the kernel's writeback work on the critical path: 8% of the extraction's
// time on a quiet machine and, on a loaded one, most of a second for 2.65 GiB in fsyncs alone
// (issue 25). Here they run beside the writes, on another core, and Drain() waits for what is
// left, so Commit's promise (every file durable) is unchanged.
//
// Every job owns its descriptor (a dup, or the file's own after its last write) and closes it,
// so the extractor may close or reuse its descriptors while a job is queued.
#ifndef REPLBOOT_BACKUP_BACKGROUND_SYNC_H_
#define REPLBOOT_BACKUP_BACKGROUND_SYNC_H_

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "replboot/base/status.h"

namespace replboot::backup {

class BackgroundSync {
 public:
  // `root` names the target directory in errors.
  explicit BackgroundSync(std::string root);
  // Stops the thread; descriptors of jobs never run are closed.
  ~BackgroundSync();
  BackgroundSync(const BackgroundSync&) = delete;
  BackgroundSync& operator=(const BackgroundSync&) = delete;

  // Starts writeback of [offset, offset + length) of `fd` (asynchronous, like
  // SYNC_FILE_RANGE_WRITE; its errors surface at the fsync). Takes a duplicate of `fd`, so the
  // caller keeps its own.
  Status Writeback(int fd, uint64_t offset, uint64_t length);
  // fsyncs `fd` (taken over: closed by the job) and records the first failure; `path` names
  // the file in that error. Returns the first failure so far, if any.
  Status SyncAndClose(int fd, std::string path);
  // Descriptors held by queued or running jobs (they count against the extractor's budget).
  size_t held() const;
  // Blocks until fewer than `n` descriptors are held (n >= 1).
  void WaitHeldBelow(size_t n);
  // Blocks until every queued job ran; the first failure of any fsync.
  Status Drain();

  struct Stats {
    uint64_t fsyncs = 0;
    uint64_t writebacks = 0;
    double fsync_seconds = 0;  // spent in fsync on the background thread
  };
  Stats stats() const;

 private:
  struct Job {
    int fd = -1;
    bool fsync = false;  // false: writeback of [offset, offset + length)
    uint64_t offset = 0;
    uint64_t length = 0;
    std::string path;
  };

  void Push(Job job);
  void Run();

  const std::string root_;
  mutable std::mutex mu_;
  std::condition_variable work_;  // a job was queued, or stopping
  std::condition_variable done_;  // a job finished
  std::deque<Job> jobs_;
  size_t held_ = 0;  // descriptors of jobs_ plus the running job's
  bool running_ = false;
  bool stop_ = false;
  Status error_;
  Stats stats_;
  std::thread thread_;  // started by the first job
};

}  // namespace replboot::backup

#endif  // REPLBOOT_BACKUP_BACKGROUND_SYNC_H_
