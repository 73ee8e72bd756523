// Test support only: a scratch directory for one test, removed with everything in it when the
// TempDir goes out of scope. Unit-test binaries get it through the `replboot_testing` CMake
// target; production code cannot include it (it is in no module's include dirs).
#ifndef REPLBOOT_TESTING_TEMP_DIR_H_
#define REPLBOOT_TESTING_TEMP_DIR_H_

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "replboot/base/files.h"

namespace replboot::testing {

class TempDir {
 public:
  // Creates a fresh /tmp/replboot-<prefix>-XXXXXX, `prefix` naming the test that owns it so a
  // leftover is traceable. Throws std::runtime_error (naming the template and errno) when
  // mkdtemp fails: as a fixture member or a local in a TEST, gtest then fails that test with
  // the message instead of running it against a missing directory.
  explicit TempDir(std::string_view prefix) {
    const std::string tmpl = "/tmp/replboot-" + std::string(prefix) + "-XXXXXX";
    std::string path = tmpl;  // mkdtemp rewrites the X's, even when it fails
    if (::mkdtemp(path.data()) == nullptr) {
      const int err = errno;
      throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(err));
    }
    path_ = std::move(path);
  }

  // A test that cannot clean up after itself fails: the next run would find its leftovers.
  ~TempDir() {
    Status removed = files::RemoveAll(path_);
    if (!removed.ok()) ADD_FAILURE() << "TempDir cleanup: " << removed.ToString();
  }

  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The directory itself, without a trailing slash.
  const std::string& path() const { return path_; }

  // path()/a/b/...: Path("data"), Path("etc", "replboot.cnf"). Nothing is created.
  template <typename... Parts>
  std::string Path(const Parts&... parts) const {
    std::string out = path_;
    ((out += '/', out += std::string_view(parts)), ...);
    return out;
  }

 private:
  std::string path_;
};

}  // namespace replboot::testing

#endif  // REPLBOOT_TESTING_TEMP_DIR_H_
