// Which server family a node runs: MariaDB or MySQL 8 (Percona Server counts as MySQL).
//
// One enum for every library: conf renders the option file from it, db picks the SQL dialect
// (db/dialect.h), replication parses GTIDs by it, backup reads the stream the flavour's backup
// tool writes (mariabackup / xtrabackup), clone checks a donor against it. The daemon resolves
// it once (node.flavour, or the server binary's --version) and passes it down.
#ifndef REPLBOOT_BASE_FLAVOUR_H_
#define REPLBOOT_BASE_FLAVOUR_H_

#include <string_view>

#include "replboot/base/status.h"

namespace replboot {

enum class Flavour { kMariaDB, kMySQL };

// "mariadb" / "mysql": the spelling of the config key, the CLI flags and the clone protocol.
std::string_view FlavourName(Flavour flavour);

// The inverse of FlavourName; anything else is kInvalidArgument naming the text.
Result<Flavour> ParseFlavour(std::string_view name);

}  // namespace replboot

#endif  // REPLBOOT_BASE_FLAVOUR_H_
