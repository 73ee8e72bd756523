// The datadir's life cycle around a clone: what state it is in, what to do about it, and
// the atomic commit that turns a prepared staging directory into the datadir.
//
// Paths (all on the datadir's parent filesystem, so every move is a rename(2)):
//   <datadir>                      the live datadir
//   <datadir>.replboot-staging     a clone being received or prepared
//   <datadir>.replboot-old         the previous datadir, kept by --force-reclone until the
//                                  new clone is in place
//   replboot-resume.json           inside an uncommitted staging dir: the durable point of a
//                                  clone whose link broke (or which was killed) mid-stream;
//                                  removed before --prepare. The decision table keeps such a
//                                  dir for the next clone to resume (daemon/bootstrap.h).
//   replboot-clone.json            the commit marker, inside a prepared clone. It is written
//                                  (fsynced) only after the stream was complete and
//                                  `--prepare` succeeded: a staging dir holding it is a
//                                  committed clone, one without it is garbage.
//
// What to do about each combination of the three is decided in one place, the daemon's
// bootstrap table (daemon/bootstrap.h), which carries out the steps below. A clone starts
// from a clean slate: no staging dir, no old dir.
#ifndef REPLBOOT_CLONE_DATADIR_H_
#define REPLBOOT_CLONE_DATADIR_H_

#include <string>
#include <string_view>

#include "replboot/base/datadir_files.h"
#include "replboot/base/status.h"

namespace replboot::clone {

inline constexpr std::string_view kMarkerName = datadir_files::kCloneMarker;
inline constexpr std::string_view kStagingSuffix = ".replboot-staging";
inline constexpr std::string_view kOldSuffix = ".replboot-old";

std::string StagingPath(const std::string& datadir);
std::string OldPath(const std::string& datadir);

enum class DirState { kAbsent, kEmpty, kCommitted, kData };
std::string_view DirStateName(DirState state);

struct DatadirInspection {
  DirState datadir = DirState::kAbsent;  // kCommitted: holds the marker
  DirState staging = DirState::kAbsent;  // kCommitted: prepared and marked; kData/kEmpty: partial
  bool staging_replaces = false;         // the staging marker says replace=true (--force-reclone)
  // An uncommitted staging dir that holds a durable point (datadir_files::kResumeState): an
  // interrupted clone the next attempt may resume (clone.h), not garbage.
  bool staging_resumable = false;
  bool old_present = false;
};

// Looks at the three paths. The datadir's trailing '/' is ignored.
Result<DatadirInspection> InspectDatadir(const std::string& datadir);

// The commit point: writes the marker (fsynced) into the prepared staging dir. `json` is
// the marker's content; `replace` records --force-reclone for a restart between the two
// renames of the swap.
Status WriteMarker(const std::string& staging, const std::string& json);

// Moves a committed staging dir into place, fsyncing the parent: an empty or absent datadir is
// replaced; one with data is kept aside as the old dir until the swap is done.
Status FinishSwap(const std::string& datadir);

// Removes a staging dir that was never committed (a clone killed midway).
Status DiscardStaging(const std::string& datadir);

// A force-reclone that never committed: the old datadir comes back in place of an empty one.
Status RestoreOld(const std::string& datadir);

// The new clone is in place: the old datadir it replaced goes.
Status DropOld(const std::string& datadir);

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_DATADIR_H_
