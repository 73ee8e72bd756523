#include "tls_test_util.h"

#include <unistd.h>

#include <memory>

#include "replboot/base/files.h"
#include "replboot/base/process.h"

namespace replboot::clone {

namespace {

Status Openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto run = process::RunCapture(argv, process::ChildEnvironment());
  if (!run) return run.error();
  if (!run->status.ok()) {
    return Status(StatusCode::kInternal,
                  fmt::format("openssl {} failed: {}", args[0], run->out + run->err));
  }
  return Status::Ok();
}

Status MakeCa(const std::string& dir, const std::string& name) {
  return Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                  "-nodes", "-keyout", dir + "/" + name + ".key", "-out",
                  dir + "/" + name + ".pem", "-days", "1", "-subj", "/CN=" + name});
}

Status MakeLeaf(const std::string& dir, const std::string& name, const std::string& ca,
                int serial) {
  const std::string base = dir + "/" + name;
  if (Status s = Openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                          "-nodes", "-keyout", base + ".key", "-out", base + ".csr", "-subj",
                          "/CN=" + name});
      !s.ok()) {
    return s;
  }
  return Openssl({"x509", "-req", "-in", base + ".csr", "-CA", dir + "/" + ca + ".pem", "-CAkey",
                  dir + "/" + ca + ".key", "-set_serial", std::to_string(serial), "-days", "1",
                  "-out", base + ".pem"});
}

}  // namespace

TestPki::~TestPki() {
  if (!dir.empty()) (void)files::RemoveAll(dir);
}

Result<std::unique_ptr<TestPki>> MakeTestPki() {
  auto pki = std::make_unique<TestPki>();
  char tmpl[] = "/tmp/replboot-tls-test-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return Error(ErrnoStatus(errno, "mkdtemp"));
  pki->dir = tmpl;
  const std::string& d = pki->dir;
  for (Status s : {MakeCa(d, "ca"), MakeCa(d, "other-ca"), MakeLeaf(d, "server", "ca", 2),
                   MakeLeaf(d, "client", "ca", 3), MakeLeaf(d, "stranger", "other-ca", 4)}) {
    if (!s.ok()) return Error(s);
  }
  auto options = [&](const std::string& leaf, const std::string& ca) {
    TlsOptions o;
    o.enabled = true;
    o.cert = d + "/" + leaf + ".pem";
    o.key = d + "/" + leaf + ".key";
    o.ca = d + "/" + ca + ".pem";
    return o;
  };
  pki->server = options("server", "ca");
  pki->client = options("client", "ca");
  pki->stranger = options("stranger", "other-ca");
  return pki;
}

}  // namespace replboot::clone
