#include "background_sync.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <utility>

namespace replboot::backup {

BackgroundSync::BackgroundSync(std::string root) : root_(std::move(root)) {}

BackgroundSync::~BackgroundSync() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (const Job& job : jobs_) close(job.fd);
}

Status BackgroundSync::Writeback(int fd, uint64_t offset, uint64_t length) {
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return ErrnoStatus(errno, "dup a descriptor for writeback");
  Push(Job{dup, false, offset, length, {}});
  return Status::Ok();
}

Status BackgroundSync::SyncAndClose(int fd, std::string path) {
  Push(Job{fd, true, 0, 0, std::move(path)});
  std::lock_guard lock(mu_);
  return error_;
}

void BackgroundSync::Push(Job job) {
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
    ++held_;
    if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
  }
  work_.notify_one();
}

size_t BackgroundSync::held() const {
  std::lock_guard lock(mu_);
  return held_;
}

void BackgroundSync::WaitHeldBelow(size_t n) {
  std::unique_lock lock(mu_);
  done_.wait(lock, [&] { return held_ < n; });
}

Status BackgroundSync::Drain() {
  std::unique_lock lock(mu_);
  done_.wait(lock, [&] { return jobs_.empty() && !running_; });
  return error_;
}

BackgroundSync::Stats BackgroundSync::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void BackgroundSync::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    work_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
    if (stop_) return;
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    running_ = true;
    // After a failure the remaining fsyncs are pointless (the extraction fails): only close.
    const bool failed = !error_.ok();
    lock.unlock();
    Status status;
    double seconds = 0;
    if (job.fsync && !failed) {
      const auto start = std::chrono::steady_clock::now();
      if (fsync(job.fd) != 0) {
        status = ErrnoStatus(errno, fmt::format("fsync {} in {}", job.path, root_));
      }
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    } else if (!job.fsync && !failed) {
      (void)sync_file_range(job.fd, static_cast<off_t>(job.offset), static_cast<off_t>(job.length),
                            SYNC_FILE_RANGE_WRITE);
    }
    close(job.fd);
    lock.lock();
    if (job.fsync) {
      ++stats_.fsyncs;
      stats_.fsync_seconds += seconds;
    } else {
      ++stats_.writebacks;
    }
    if (!status.ok() && error_.ok()) error_ = status;
    running_ = false;
    --held_;
    done_.notify_all();
  }
}

}  // namespace replboot::backup
