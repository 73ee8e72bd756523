// Where a clone's stream bytes go while they arrive: unpacked into a staging directory.
// Internal to clone/.
#ifndef REPLBOOT_CLONE_EXTRACT_H_
#define REPLBOOT_CLONE_EXTRACT_H_

#include <atomic>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "replboot/base/flavour.h"
#include "replboot/base/status.h"
#include "replboot/clone/stream.h"
#include "resume.h"

namespace replboot::clone {

// The clone's name for a sink that unpacks: the extractor and its pipelined wrapper.
using StreamExtractor = StreamSink;

// A clone's durable points (resume.h): where the extraction records them, how often, and,
// when it resumes, the point it goes on from.
struct DurablePoints {
  // The fields of every point that do not change (donor, header, run_id, resume_id,
  // checkpoint_bytes: at least kMinCheckpointBytes).
  ResumeState base;
  std::shared_ptr<FrameLog> frames;  // the receiving thread adds every frame it hands on
  // Resuming: the point LoadResumePoint put the dir back to.
  std::optional<ResumeState> resume_from;
  // The offset of the last point recorded (0: none, or it was dropped), for the receiving
  // thread: after a broken link, a staging dir with a point is kept for the next attempt.
  std::atomic<uint64_t> durable{0};
  std::atomic<uint64_t> points{0};
};

// Unpacks into `dir` (which exists and is empty, or, with points->resume_from, is back at
// that point) for a stream of `flavour`. A member named like one of the node's own files
// (base/datadir_files.h) or one of `reserved_names` at the top of the stream fails the
// extraction: a donor can never forge the node's own state files. With `points`, a durable
// point is recorded at the first chunk boundary after every checkpoint_bytes of stream, and
// Finish() removes the last one once the stream is whole and durable.
Result<std::unique_ptr<StreamExtractor>> MakeExtractor(
    const std::string& dir, Flavour flavour,
    const std::vector<std::string>& reserved_names = {},
    std::shared_ptr<DurablePoints> points = nullptr);

// Runs `inner` on a thread of its own behind a queue of at most `max_queued` bytes, so
// that the network keeps flowing (and the donor's backup tool keeps producing) while a
// write or an fsync waits for the disk. Write() copies the bytes and returns at once
// unless the queue is full; WriteBlock() hands the block over without a copy and gives
// back one `inner` finished with. Memory, when the caller only uses WriteBlock with
// buffers of one capacity C: at most max_queued / C + 2 buffers (bounded_queue.h), i.e.
// max_queued + 2 C bytes. An error of `inner` is returned by the next call.
std::unique_ptr<StreamExtractor> MakePipelined(std::unique_ptr<StreamExtractor> inner,
                                               size_t max_queued);

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_EXTRACT_H_
