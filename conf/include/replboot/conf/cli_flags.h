// Configuration flags shared by every command that needs the node's settings
// (`config render|show`, `run`, `peers`, `clone`, `status`):
//
//   --config FILE, --set section.key=value (repeatable), and the common settings
//   --hostname, --datadir, --port, --flavour, --service, --dns-server (repeatable),
//   --log-level.
//
// Usage:
//   ConfigFlags flags;
//   AddConfigFlags(cmd, &flags);            // `flags` must outlive parsing
//   cmd->callback([&] { auto loaded = LoadFromFlags(flags); ... });
#ifndef REPLBOOT_CONF_CLI_FLAGS_H_
#define REPLBOOT_CONF_CLI_FLAGS_H_

#include <CLI/CLI.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "replboot/base/status.h"
#include "replboot/conf/config.h"

namespace replboot::conf {

struct ConfigFlags {
  std::optional<std::string> config_file;         // --config
  std::vector<std::string> sets;                  // --set, in order
  std::map<std::string, std::string> values;      // "section.key" -> value of a common flag
  std::map<std::string, std::string> flag_names;  // "section.key" -> "--port"
};

void AddConfigFlags(CLI::App* cmd, ConfigFlags* flags);

// LoadOptions from the flags and ProcessEnvironment(); loads the config and applies
// log.level. Errors are kInvalidArgument naming every problem.
LoadOptions OptionsFromFlags(const ConfigFlags& flags);
Result<LoadedConfig> LoadFromFlags(const ConfigFlags& flags);

}  // namespace replboot::conf

#endif  // REPLBOOT_CONF_CLI_FLAGS_H_
