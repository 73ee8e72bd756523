// TLS settings of the backup connection (backup.tls, tls_cert, tls_key, tls_ca), shared by
// the serving and the cloning side. See protocol.h for how TLS and the HMAC fit together.
#ifndef REPLBOOT_CLONE_TLS_H_
#define REPLBOOT_CLONE_TLS_H_

#include <memory>
#include <string>

#include "replboot/base/status.h"

namespace replboot::clone {

namespace net {
class TlsContext;  // an SSL_CTX with our certificate, key and CA loaded (net.h)
}  // namespace net

struct TlsOptions {
  bool enabled = false;
  std::string cert;  // PEM certificate (chain) this side presents
  std::string key;   // PEM private key of `cert`
  // PEM CA that signs the peers. When set, each side verifies the other's certificate
  // against it (the server then requires a client certificate); names are not checked,
  // the CA is the cluster's own. When empty nobody verifies certificates: the stream is
  // still encrypted, and the channel binding (protocol.h) keeps a man in the middle from
  // passing the HMAC authentication.
  std::string ca;
};

enum class TlsSide { kClient, kServer };
// Loads the certificate, key and CA once; every connection of that side shares the context
// (CloneOptions::tls_context, ServerOptions::tls_context). kInvalidArgument naming the file
// that cannot be loaded.
Result<std::shared_ptr<const net::TlsContext>> MakeTlsContext(const TlsOptions& options,
                                                              TlsSide side);

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_TLS_H_
