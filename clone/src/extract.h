// Where a clone's stream bytes go while they arrive: unpacked into a staging directory.
// Internal to clone/.
#ifndef REPLBOOT_CLONE_EXTRACT_H_
#define REPLBOOT_CLONE_EXTRACT_H_

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "replboot/base/flavour.h"
#include "replboot/base/status.h"
#include "replboot/clone/stream.h"

namespace replboot::clone {

// The clone's name for a sink that unpacks: the extractor and its pipelined wrapper.
using StreamExtractor = StreamSink;

// Unpacks into `dir` (which exists and is empty) for a stream of `flavour`. A member named
// like one of the node's own files (base/datadir_files.h) or one of `reserved_names` at the
// top of the stream fails the extraction: a donor can never forge the node's own state files.
Result<std::unique_ptr<StreamExtractor>> MakeExtractor(
    const std::string& dir, Flavour flavour,
    const std::vector<std::string>& reserved_names = {});

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
