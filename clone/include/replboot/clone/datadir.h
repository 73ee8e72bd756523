// The datadir's life cycle around a clone: what state it is in, what to do about it, and
// the atomic commit that turns a prepared staging directory into the datadir.
//
// Paths (all on the datadir's parent filesystem, so every move is a rename(2)):
//   <datadir>                      the live datadir
//   <datadir>.replboot-staging     a clone being received or prepared
//   <datadir>.replboot-old         the previous datadir, kept by --force-reclone until the
//                                  new clone is in place
//   replboot-clone.json            the commit marker, inside a prepared clone. It is written
//                                  (fsynced) only after the stream was complete and
//                                  `--prepare` succeeded: a staging dir holding it is a
//                                  committed clone, one without it is garbage.
//
// clang-format off
// Decision table (Decide(); Recover() carries out the first four rows, in order, on start):
//
//  staging          | datadir                      | old     | action
//  -----------------+------------------------------+---------+-------------------------------------
//  committed        | absent or empty              | any     | kFinishSwap: staging → datadir, drop old
//  committed        | data, marker replace=true    | absent  | kFinishSwap: datadir → old, staging → datadir
//  committed        | data, otherwise              | any     | kDiscardStaging (never overwrite data)
//  uncommitted      | any                          | any     | kDiscardStaging (killed mid-clone)
//  absent           | absent or empty              | present | kRestoreOld (a force-reclone that never
//                   |                              |         |   committed: the old datadir comes back)
//  absent           | has marker                   | present | kDropOld (the new clone is in place)
//  absent           | absent or empty              | absent  | primary: kInitialize; replica: kClone
//  absent           | marker, or data without one  | absent  | primary: kStart (a primary never clones);
//                   |                              |         |   replica with --force-reclone: kClone
//                   |                              |         |   (the old one is kept aside until the
//                   |                              |         |   new one commits); else kStart (existing
//                   |                              |         |   data is never overwritten)
// clang-format on
#ifndef REPLBOOT_CLONE_DATADIR_H_
#define REPLBOOT_CLONE_DATADIR_H_

#include <string>
#include <string_view>

#include "replboot/base/status.h"

namespace replboot::clone {

inline constexpr std::string_view kMarkerName = "replboot-clone.json";
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
  bool old_present = false;
};

// Looks at the three paths. The datadir's trailing '/' is ignored.
Result<DatadirInspection> InspectDatadir(const std::string& datadir);

enum class Action {
  kFinishSwap,
  kDiscardStaging,
  kRestoreOld,
  kDropOld,
  kStart,
  kInitialize,
  kClone,
};
std::string_view ActionName(Action action);

// The table above; pure.
Action Decide(const DatadirInspection& state, bool is_primary, bool force_reclone);

// Applies kFinishSwap / kDiscardStaging / kRestoreOld / kDropOld until none applies and
// returns the remaining action (kStart, kInitialize or kClone). Logs each step.
Result<Action> Recover(const std::string& datadir, bool is_primary, bool force_reclone);

// The commit point: writes the marker (fsynced) into the prepared staging dir. `json` is
// the marker's content; `replace` records --force-reclone for a restart between the two
// renames of the swap.
Status WriteMarker(const std::string& staging, const std::string& json);

// Moves a committed staging dir into place (rows 1 and 2), fsyncing the parent.
Status FinishSwap(const std::string& datadir);

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_DATADIR_H_
