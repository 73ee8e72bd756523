#include "replboot/conf/cli_flags.h"

#include "replboot/base/log.h"

namespace replboot::conf {
namespace {

struct CommonFlag {
  const char* flag;
  const char* key;
  const char* help;
  bool repeatable;  // values are joined with ',' into a list setting
};

constexpr CommonFlag kCommonFlags[] = {
    {"--hostname", "node.hostname", "pod hostname <statefulset>-<ordinal> (node.hostname)", false},
    {"--datadir", "mysql.datadir", "mysqld data directory (mysql.datadir)", false},
    {"--port", "mysql.port", "mysqld TCP port (mysql.port)", false},
    {"--flavour", "node.flavour", "auto | mariadb | mysql (node.flavour)", false},
    {"--service", "cluster.service", "headless Service name (cluster.service)", false},
    {"--dns-server", "dns.servers", "DNS server host[:port], repeatable (dns.servers)", true},
    {"--log-level", "log.level", "trace | debug | info | warn | error (log.level)", false},
};

}  // namespace

void AddConfigFlags(CLI::App* cmd, ConfigFlags* flags) {
  cmd->add_option_function<std::string>(
         "--config", [flags](const std::string& path) { flags->config_file = path; },
         "TOML settings file (default /etc/replboot/replboot.toml when it exists)")
      ->type_name("FILE");
  cmd->add_option("--set", flags->sets, "set any setting: section.key=value (repeatable)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  for (const CommonFlag& f : kCommonFlags) {
    std::string key = f.key;
    std::string flag = f.flag;
    if (f.repeatable) {
      cmd->add_option_function<std::vector<std::string>>(
             flag,
             [flags, key, flag](const std::vector<std::string>& values) {
               std::string joined;
               for (const std::string& v : values) joined += (joined.empty() ? "" : ",") + v;
               flags->values[key] = joined;
               flags->flag_names[key] = flag;
             },
             f.help)
          ->allow_extra_args(false);
    } else {
      cmd->add_option_function<std::string>(
          flag,
          [flags, key, flag](const std::string& value) {
            flags->values[key] = value;
            flags->flag_names[key] = flag;
          },
          f.help);
    }
  }
}

LoadOptions OptionsFromFlags(const ConfigFlags& flags) {
  LoadOptions options;
  options.config_file = flags.config_file;
  options.env = ProcessEnvironment();
  options.sets = flags.sets;
  options.flags = flags.values;
  options.flag_names = flags.flag_names;
  return options;
}

Result<LoadedConfig> LoadFromFlags(const ConfigFlags& flags) {
  auto loaded = LoadConfig(OptionsFromFlags(flags));
  if (!loaded) return loaded;
  // Validate() accepted the level and the format, so these cannot fail.
  log::SetLevel(loaded->config.log.level);
  log::SetFormat(loaded->config.log.format);
  return loaded;
}

}  // namespace replboot::conf
