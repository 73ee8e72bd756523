// A backup stream apart from where it comes from or goes to, so a clone, a backup into an
// object store and a restore from one share the same pieces:
//
//   FetchStream    a donor's authenticated stream (the clone protocol) into any sink:
//                  the clone's extractor, or archive/'s writer for a backup to a store
//   CommitStream   any stream into a committed datadir: pre-flight, fresh staging dir, the
//                  safe extractor, completeness checks, `--prepare`, chown, fsync, cluster
//                  id, commit marker, swap (clone.h); CloneFrom is FetchStream into it
//
// Either way the rules of clone.h hold: a failure before the marker discards the staging dir
// and leaves the datadir as it was.
#ifndef REPLBOOT_CLONE_STREAM_H_
#define REPLBOOT_CLONE_STREAM_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "replboot/base/status.h"
#include "replboot/clone/clone.h"
#include "replboot/clone/protocol.h"

namespace replboot::clone {

// Where the stream's bytes go, in order.
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  virtual Status Write(std::span<const uint8_t> bytes) = 0;
  // Write(*block), but the sink may keep `*block` itself instead of copying it: on return
  // `*block` is a buffer for the caller's next bytes (contents unspecified, possibly empty).
  // The receive path reads each frame into it, so a stream is copied once less.
  virtual Status WriteBlock(std::vector<uint8_t>* block) { return Write(*block); }
  // The stream ended: succeeds only when everything the sink took is whole and durable.
  virtual Status Finish() = 0;
  // Gives up; safe after a failed Write or Finish.
  virtual void Abort() = 0;
};

struct FetchedStream {
  std::string peer;          // address:port
  NodeIdentity donor_node;   // who the handshake proved the donor to be
  StreamHeader header;
  uint64_t bytes = 0;
  double seconds = 0;
};

// Connects, authenticates (options.expected_ordinal, the donor check), reads the HEADER, runs
// the pre-flight (flavour and version against the local tool; free space only when
// options.check_free_space), then builds the sink from the header and streams into it up to
// the TRAILER, which must say the donor's tool succeeded and sent exactly what arrived; then
// sink.Finish(). Any failure calls sink.Abort(). Errors as CloneFrom's.
using MakeSink = std::function<Result<std::unique_ptr<StreamSink>>(const FetchedStream& stream)>;
Result<FetchedStream> FetchStream(const Endpoint& donor, const CloneOptions& options,
                                  const MakeSink& make_sink);

// Feeds `feed` a fresh staging dir's extractor and commits what it wrote as the datadir.
// `source` names where the bytes come from (logs, the marker's "donor"); `header` says what
// they are (flavour, server version, cluster id, estimated bytes for the pre-flight). `feed`
// returns the number of bytes it wrote, or the error that ends the attempt.
using FeedStream = std::function<Result<uint64_t>(StreamSink& sink)>;
Result<CloneResult> CommitStream(const CloneOptions& options, const std::string& source,
                                 const StreamHeader& header, const FeedStream& feed);

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_STREAM_H_
