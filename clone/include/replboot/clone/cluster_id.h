// The cluster identity: a UUID made when the first primary initializes its datadir, kept in
// the datadir as kClusterIdName and carried into every clone (the donor sends it in the stream
// HEADER, the receiver writes it into the staging dir before the commit marker). With it a
// node tells "data of this cluster" from "some other database" when it asks its peers, e.g.
// a primary that lost its volume looking for the replica to recover from.
//
// The backup tools do not copy arbitrary files of the datadir's top, which is why the id
// travels in the HEADER rather than in the stream; and the stream may not contain a file of
// that name (a reserved name, like the commit marker), so a donor cannot plant one.
#ifndef REPLBOOT_CLONE_CLUSTER_ID_H_
#define REPLBOOT_CLONE_CLUSTER_ID_H_

#include <optional>
#include <string>
#include <string_view>

#include "replboot/base/datadir_files.h"
#include "replboot/base/status.h"
#include "replboot/clone/clone.h"

namespace replboot::clone {

inline constexpr std::string_view kClusterIdName = datadir_files::kClusterId;

// A fresh random (version 4) UUID in lower case, from OpenSSL's CSPRNG.
Result<std::string> NewClusterId();

// A lower-case UUID "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (36 characters, hex digits and
// dashes where they belong): the only form a cluster id has, on disk and on the wire.
bool ValidClusterId(std::string_view text);

// The id in `dir` (a datadir or a staging dir): nullopt when there is no id file;
// kCorruption when the file does not hold a valid id (a trailing newline is fine).
Result<std::optional<std::string>> ReadClusterId(const std::string& dir);

// Writes `id` into `dir` atomically (0644: not a secret), handed to `owner` when set (the
// mysql user owns what is in the datadir). kInvalidArgument for an invalid id.
Status WriteClusterId(const std::string& dir, const std::string& id,
                      const std::optional<FileOwner>& owner);

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_CLUSTER_ID_H_
