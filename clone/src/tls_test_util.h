// Throwaway PKI for TLS tests: two CAs and certificates signed by each, made with the
// openssl command in a private temporary directory. Test-only.
#ifndef REPLBOOT_CLONE_TLS_TEST_UTIL_H_
#define REPLBOOT_CLONE_TLS_TEST_UTIL_H_

#include <string>

#include "replboot/base/status.h"
#include "replboot/clone/tls.h"

namespace replboot::clone {

struct TestPki {
  std::string dir;      // removed by the destructor
  TlsOptions server;    // cert/key signed by ca, ca set
  TlsOptions client;    // another cert/key signed by ca, ca set
  TlsOptions stranger;  // cert/key signed by other_ca, ca = other_ca (trusts nobody here)
  ~TestPki();
};

// Fresh keys and certificates (EC P-256, valid one day) in a mkdtemp directory under /tmp.
Result<std::unique_ptr<TestPki>> MakeTestPki();

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_TLS_TEST_UTIL_H_
