// `replboot peers`: which peers DNS knows, which answer, and which would be the donor.
#ifndef REPLBOOT_DISCOVERY_COMMANDS_H_
#define REPLBOOT_DISCOVERY_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <chrono>
#include <functional>
#include <memory>

#include "replboot/base/status.h"
#include "replboot/conf/config.h"
#include "replboot/discovery/prober.h"

namespace replboot::discovery {

// Builds the prober `peers` uses from the configuration: an authenticated one (clone/
// provides it; discovery/ does not depend on clone/) or nullptr for a plain TCP connect,
// e.g. when no backup.secret is configured.
using ProberFactory = std::function<Result<std::unique_ptr<Prober>>(
    const conf::Config& config, std::chrono::milliseconds timeout)>;

// Exit status: 0 when a donor was chosen, 1 when none (every candidate listed with
// why not), 2 for a configuration or hostname problem, 128+signal when SIGTERM or
// SIGINT interrupted the lookups.
// Without a factory, or when it returns nullptr, peers are probed with a TCP connect.
void AddCommands(CLI::App& app, ProberFactory make_prober = nullptr);

}  // namespace replboot::discovery

#endif  // REPLBOOT_DISCOVERY_COMMANDS_H_
