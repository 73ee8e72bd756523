// The clone step of `replboot run` (the daemon's prepare_datadir hook for a replica).
//
//   Recover() the datadir (datadir.h table: finish an interrupted commit, drop leftovers)
//   → if the table still says kClone: discover peers in policy order (dns.policy,
//     nearest-lower by default, via discovery/; each probed with the authenticated hello,
//     prober.h), clone from the first that would serve us,
//     on failure from the next; rounds with backoff until a clone commits or `stopping`
//
// A peer that refuses our secret is skipped for a few rounds (no tight loop). The primary
// never clones.
#ifndef REPLBOOT_CLONE_NODE_H_
#define REPLBOOT_CLONE_NODE_H_

#include <functional>

#include "replboot/base/status.h"
#include "replboot/clone/clone.h"
#include "replboot/conf/config.h"
#include "replboot/conf/identity.h"

namespace replboot::clone {

// Blocks (run it on a worker thread, never an I/O thread). Ok when the datadir holds a
// committed clone or data of its own afterwards; kCancelled when `stopping` said so.
// `on_progress` (optional) sees every phase and the streaming progress (clone.h).
Status CloneIntoDatadir(const conf::Config& config, const conf::Identity& identity,
                        const std::function<bool()>& stopping,
                        const CloneProgressCallback& on_progress = {});

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_NODE_H_
