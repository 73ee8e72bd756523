#include "extract.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include "replboot/base/process.h"

namespace replboot::clone {

namespace {

// The unpacker that ships with the backup tool (`mbstream -x` / `xbstream -x`), fed through
// a pipe. It checks every chunk's CRC and fails on a corrupted stream.
class ToolExtractor : public StreamExtractor {
 public:
  ToolExtractor(std::string tool, std::string dir) : tool_(std::move(tool)), dir_(std::move(dir)) {}
  ~ToolExtractor() override { Abort(); }

  Status Start() {
    process::SpawnOptions spawn;
    spawn.argv = {tool_, "-x", "-C", dir_};
    spawn.env = process::ChildEnvironment();
    spawn.stdin_mode = process::Stdio::kPipe;
    spawn.stdout_mode = process::Stdio::kNull;
    spawn.stderr_mode = process::Stdio::kPipe;
    auto child = process::Spawn(spawn);
    if (!child) return child.error().WithContext(fmt::format("starting {}", tool_));
    pid_ = child->pid;
    in_fd_ = child->stdin_fd;
    err_fd_ = child->stderr_fd;
    ::fcntl(in_fd_, F_SETPIPE_SZ, 1 << 20);
    ::fcntl(err_fd_, F_SETFL, ::fcntl(err_fd_, F_GETFL) | O_NONBLOCK);
    return Status::Ok();
  }

  Status Write(std::span<const uint8_t> bytes) override {
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(in_fd_, bytes.data() + done, bytes.size() - done);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      // EPIPE: the unpacker quit, its exit status and stderr say why.
      return Finish();
    }
    DrainStderr();
    return Status::Ok();
  }

  Status Finish() override {
    if (pid_ < 0) return Status(StatusCode::kInternal, fmt::format("{} already finished", tool_));
    if (in_fd_ >= 0) ::close(in_fd_);
    in_fd_ = -1;
    // Read stderr to EOF (blocking) so the child never stalls on a full pipe.
    ::fcntl(err_fd_, F_SETFL, ::fcntl(err_fd_, F_GETFL) & ~O_NONBLOCK);
    DrainStderr();
    ::close(err_fd_);
    err_fd_ = -1;
    auto status = process::Wait(pid_);
    pid_ = -1;
    if (!status) return status.error();
    if (status->ok()) return Status::Ok();
    std::string err = err_;
    while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.pop_back();
    if (err.find("No space left") != std::string::npos) {
      return Status(StatusCode::kNoSpace, fmt::format("no space left on device in {}: {}", dir_, err));
    }
    return Status(StatusCode::kCorruption,
                  fmt::format("{} -x failed ({}): {}", tool_, status->ToString(), err.empty() ? "no message" : err));
  }

  void Abort() override {
    if (in_fd_ >= 0) ::close(in_fd_);
    if (err_fd_ >= 0) ::close(err_fd_);
    in_fd_ = err_fd_ = -1;
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      (void)process::Wait(pid_);
      pid_ = -1;
    }
  }

 private:
  void DrainStderr() {
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(err_fd_, buf, sizeof buf);
      if (n > 0) {
        if (err_.size() < 16384) err_.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return;
    }
  }

  std::string tool_;
  std::string dir_;
  pid_t pid_ = -1;
  int in_fd_ = -1;
  int err_fd_ = -1;
  std::string err_;
};

}  // namespace

Result<std::unique_ptr<StreamExtractor>> MakeExtractor(const std::string& dir, const std::string& flavour) {
  auto extractor = std::make_unique<ToolExtractor>(flavour == "mysql" ? "xbstream" : "mbstream", dir);
  if (Status s = extractor->Start(); !s.ok()) return Error(s);
  return std::unique_ptr<StreamExtractor>(std::move(extractor));
}

}  // namespace replboot::clone
