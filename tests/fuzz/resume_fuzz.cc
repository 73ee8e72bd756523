// libFuzzer target for what a resumed clone reads back from its staging dir and what a donor
// reads from a resuming client (clone/src/resume.h, protocol.h "Why resume"): the durable
// point's JSON, the journal of names, and a resume HELLO. The first byte picks the parser;
// each gives an error or a value that keeps its promises (bounds, round trips).
//
// Build: CC=clang CXX=clang++ cmake -DREPLBOOT_FUZZ=ON ... && ninja resume_fuzz
// Run:   scripts/ci-fuzz
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "replboot/backup/xbstream_extractor.h"
#include "replboot/clone/protocol.h"
#include "resume.h"

namespace {

namespace clone = replboot::clone;

void Check(bool ok) {
  if (!ok) std::abort();
}

void FuzzState(std::string_view text) {
  auto state = clone::ParseResumeState(text);
  if (!state) return;
  Check(state->frame_offset <= state->offset);
  Check(state->offset - state->frame_offset < clone::kMaxDataPayload);
  Check(state->open_files.size() <= clone::kMaxResumeOpenFiles);
  Check(state->journal_bytes <= clone::kMaxJournalBytes);
  auto again = clone::ParseResumeState(clone::EncodeResumeState(*state));
  Check(again.has_value() && again->offset == state->offset &&
        again->frame_offset == state->frame_offset && again->chain == state->chain &&
        again->resume_id == state->resume_id && again->open_files.size() == state->open_files.size() &&
        again->header == state->header);
}

void FuzzJournal(std::string_view text) {
  auto names = replboot::backup::ReplayJournal(text, 1000);
  if (!names) return;
  Check(names->size() <= 1000);
  // Every name it leaves is one a stream could have made.
  for (const auto& name : *names) Check(replboot::backup::CheckStreamPath(name).ok());
}

void FuzzHello(std::string_view text) {
  auto hello = clone::ParseHello(text);
  if (!hello) return;
  Check((hello->mode == clone::HelloMode::kResume) == hello->resume.has_value());
  // Resume came with version 4 (protocol.h, "Versions").
  Check(hello->mode != clone::HelloMode::kResume || hello->version >= 4);
  Check(clone::EncodeHello(hello->mode, hello->client, hello->compress, hello->resume,
                           hello->version) == text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 3) {
    case 0:
      FuzzState(text);
      break;
    case 1:
      FuzzJournal(text);
      break;
    case 2:
      FuzzHello(text);
      break;
  }
  return 0;
}
