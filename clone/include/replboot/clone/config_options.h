// Server and clone options from the node's configuration (conf::Config), with the
// secrets resolved from their inline value or file.
#ifndef REPLBOOT_CLONE_CONFIG_OPTIONS_H_
#define REPLBOOT_CLONE_CONFIG_OPTIONS_H_

#include "replboot/base/status.h"
#include "replboot/clone/backup_server.h"
#include "replboot/clone/clone.h"
#include "replboot/conf/config.h"

namespace replboot::clone {

// backup.secret from its inline value or file; "" when neither is set.
Result<std::string> BackupSecret(const conf::Config& config);

// kInvalidArgument when no shared secret is configured: a backup endpoint without
// authentication would hand the whole database to anyone who reaches the port.
Result<ServerOptions> ServerOptionsFromConfig(const conf::Config& config);
Result<CloneOptions> CloneOptionsFromConfig(const conf::Config& config);

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_CONFIG_OPTIONS_H_
