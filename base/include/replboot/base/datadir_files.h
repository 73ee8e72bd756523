// The files replboot itself keeps at the top of a datadir, named in one place: a clone's
// extractor refuses each of them as a member of the donor's stream (clone/extract.h), so a
// donor (or whoever speaks for one) can never plant the node's own state, e.g. a forged
// commit marker that makes garbage look like a finished clone, a replication intent that
// points the replica elsewhere, or a pending root-password marker. The modules that own a
// file refer to its name here; a new file replboot keeps in a datadir gets its name here.
//
// Siblings of the datadir (<datadir>.replboot-staging, .replboot-old, .replboot-reclone.json)
// are outside any stream's reach and are not listed.
#ifndef REPLBOOT_BASE_DATADIR_FILES_H_
#define REPLBOOT_BASE_DATADIR_FILES_H_

#include <array>
#include <string_view>

namespace replboot::datadir_files {

// clone: the commit marker of a prepared clone (clone/datadir.h).
inline constexpr char kCloneMarker[] = "replboot-clone.json";
// clone: the cluster identity, which travels in the stream's HEADER (clone/cluster_id.h).
inline constexpr char kClusterId[] = "replboot-cluster.id";
// replication: the replica's replication intent (replication/configure.h).
inline constexpr char kReplicationIntent[] = "replboot-replication.json";
// daemon: a recovered primary's unfinished promotion (daemon/primary_recovery.h).
inline constexpr char kPromotionMarker[] = "replboot-promote.json";
// daemon: initialized, root password not set yet (daemon/bootstrap.h).
inline constexpr char kRootPasswordPending[] = "replboot-root-password.pending";

// clone: a clone's durable point and the names its stream made, in its staging dir, so that
// an interrupted clone resumes from there (clone/src/resume.h).
inline constexpr char kResumeState[] = "replboot-resume.json";
inline constexpr char kResumeJournal[] = "replboot-resume.files";

inline constexpr std::array<std::string_view, 7> kAll = {
    kCloneMarker,         kClusterId,   kReplicationIntent, kPromotionMarker,
    kRootPasswordPending, kResumeState, kResumeJournal};

}  // namespace replboot::datadir_files

#endif  // REPLBOOT_BASE_DATADIR_FILES_H_
