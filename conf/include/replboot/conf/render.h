// The mysqld option file of a node: role- and flavour-specific replication settings.
#ifndef REPLBOOT_CONF_RENDER_H_
#define REPLBOOT_CONF_RENDER_H_

#include <string>

#include "replboot/base/status.h"
#include "replboot/conf/config.h"
#include "replboot/conf/identity.h"

namespace replboot::conf {

// "[mysqld]\nserver-id=102\n..." for this node. Deterministic (golden-file tested).
// kInvalidArgument when a value cannot be written as one option-file line (a NUL byte, too
// long; see option_file::Line).
Result<std::string> RenderMysqldConfig(const Config& config, const Identity& identity,
                                       Flavour flavour);

// Flavour of a server binary from its `--version` output ("... MariaDB ..." or MySQL).
Flavour FlavourFromVersionText(const std::string& version_text);

// config.node.flavour when set, else runs `<mysqld> --version`.
Result<Flavour> DetectFlavour(const Config& config);

// The server binary to run: config.mysql.mysqld, else mariadbd/mysqld from PATH.
std::string ServerBinary(const Config& config, Flavour flavour);

// Writes the rendered file atomically as <dir>/replboot.cnf; returns its path.
Result<std::string> WriteMysqldConfig(const std::string& dir, const std::string& content);

}  // namespace replboot::conf

#endif  // REPLBOOT_CONF_RENDER_H_
