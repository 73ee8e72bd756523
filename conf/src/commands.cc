#include "replboot/conf/commands.h"

#include <fmt/format.h>

#include <cstdio>
#include <memory>

#include "replboot/base/exit_code.h"
#include "replboot/conf/cli_flags.h"
#include "replboot/conf/config.h"
#include "replboot/conf/identity.h"
#include "replboot/conf/render.h"

namespace replboot::conf {
namespace {

constexpr int kConfigError = 2;
constexpr int kIOError = 1;

void Fail(int code, const Status& status) {
  fmt::print(stderr, "replboot config: {}\n", status.message());
  cli::ExitCode() = code;
}

struct RenderArgs {
  ConfigFlags flags;
  std::string out_dir;
};

void RunRender(const RenderArgs& args) {
  auto loaded = LoadFromFlags(args.flags);
  if (!loaded) return Fail(kConfigError, loaded.error());
  const Config& config = loaded->config;
  auto identity = ParseIdentity(config.node.hostname, config.node.server_id_offset);
  if (!identity) return Fail(kConfigError, identity.error());
  auto flavour = DetectFlavour(config);
  if (!flavour) return Fail(kConfigError, flavour.error());
  auto content = RenderMysqldConfig(config, *identity, *flavour);
  if (!content) return Fail(kConfigError, content.error());
  if (args.out_dir.empty()) {
    fmt::print("{}", *content);
    return;
  }
  auto path = WriteMysqldConfig(args.out_dir, *content);
  if (!path) return Fail(kIOError, path.error());
  fmt::print("{}\n", *path);
}

void RunShow(const ConfigFlags& flags) {
  auto loaded = LoadFromFlags(flags);
  if (!loaded) return Fail(kConfigError, loaded.error());
  fmt::print("{}", ShowConfig(*loaded));
}

void RunKeys() {
  for (const SettingInfo& s : DescribeSettings()) {
    fmt::print("{:<28} {:<36} {:<6} {:<24} {}{}\n", s.key, s.env, s.type, s.default_value,
               s.description, s.secret ? " (secret)" : "");
  }
}

}  // namespace

void AddCommands(CLI::App& app) {
  CLI::App* config = app.add_subcommand("config", "render or show this node's configuration");
  config->require_subcommand(1);

  // CLI11 keeps pointers into these until parsing ends, i.e. for the life of `app`.
  auto render_args = std::make_shared<RenderArgs>();
  CLI::App* render =
      config->add_subcommand("render", "print (or write with --out) this node's mysqld config");
  AddConfigFlags(render, &render_args->flags);
  render->add_option("--out", render_args->out_dir, "write DIR/replboot.cnf atomically")
      ->type_name("DIR");
  render->callback([render_args] { RunRender(*render_args); });

  auto show_flags = std::make_shared<ConfigFlags>();
  CLI::App* show = config->add_subcommand("show", "print the effective settings, secrets redacted");
  AddConfigFlags(show, show_flags.get());
  show->callback([show_flags] { RunShow(*show_flags); });

  CLI::App* keys =
      config->add_subcommand("keys", "list every setting with its variable and default");
  keys->callback([] { RunKeys(); });
}

}  // namespace replboot::conf
