// SIGINT/SIGTERM for a command run by hand (`replboot clone`, `replboot backup test-restore`):
// a stop request, so it ends in any phase and cleans up like `replboot run` does.
#ifndef REPLBOOT_DAEMON_STOP_ON_SIGNAL_H_
#define REPLBOOT_DAEMON_STOP_ON_SIGNAL_H_

#include <pthread.h>

#include <atomic>
#include <csignal>
#include <ctime>
#include <stop_token>
#include <thread>

namespace replboot::daemon {

// SIGINT/SIGTERM request `stop`, from a thread that waits for them (blocked in the thread that
// makes this, and so in every thread it starts afterwards).
class StopOnSignal {
 public:
  StopOnSignal() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    thread_ = std::jthread([this, set](std::stop_token done) {
      while (!done.stop_requested()) {
        timespec tick{0, 200'000'000};
        int signo = sigtimedwait(&set, nullptr, &tick);
        if (signo > 0) {
          signal_ = signo;
          source_.request_stop();
          return;
        }
      }
    });
  }
  std::stop_token token() const { return source_.get_token(); }
  int signal() const { return signal_.load(); }

 private:
  std::stop_source source_;
  std::atomic<int> signal_{0};
  std::jthread thread_;
};

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_STOP_ON_SIGNAL_H_
