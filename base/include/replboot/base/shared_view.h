// A view one thread replaces whole and others read whole: the state a long step publishes
// (a clone's progress, a recovery decision) for /status and /metrics. Readers get a copy taken
// under the lock, never a reference, so a reader never sees half of an update.
#ifndef REPLBOOT_BASE_SHARED_VIEW_H_
#define REPLBOOT_BASE_SHARED_VIEW_H_

#include <mutex>
#include <utility>

namespace replboot {

template <typename T>
class SharedView {
 public:
  using View = T;
  void Set(T view) {
    std::lock_guard lock(mu_);
    view_ = std::move(view);
  }
  // Changes part of the view in place, under the lock: for a field that another writer than
  // the view's owner keeps (e.g. the time of the last restore test).
  template <typename F>
  void Update(F&& change) {
    std::lock_guard lock(mu_);
    change(view_);
  }
  T Get() const {
    std::lock_guard lock(mu_);
    return view_;
  }

 private:
  mutable std::mutex mu_;
  T view_;
};

}  // namespace replboot

#endif  // REPLBOOT_BASE_SHARED_VIEW_H_
