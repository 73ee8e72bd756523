// Seal/open throughput of one core on sysbench-like pages (not a test; see CMakeLists.txt):
//   archive_object_bench [object MiB = 16] [zstd level = 1] [objects = 16]
#include <zstd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "memory_store_test_util.h"
#include "replboot/archive/keys.h"
#include "replboot/archive/object.h"
#include "replboot/archive/writer.h"

int main(int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  const size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 16;
  const int level = argc > 2 ? std::atoi(argv[2]) : 1;
  const int count = argc > 3 ? std::atoi(argv[3]) : 16;
  const auto key = replboot::archive::KeyFromSecret("bench secret, not a real one: 0123456789");
  std::vector<std::vector<uint8_t>> inputs;
  for (int i = 0; i < 4; ++i) {
    inputs.push_back(replboot::archive::testing::SysbenchLikeBytes(mib << 20, 7 + i));
  }
  double seal_s = 0, open_s = 0, zstd_s = 0;
  std::vector<uint8_t> frame(ZSTD_compressBound(mib << 20));
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  uint64_t logical = 0, stored = 0;
  for (int i = 0; i < count; ++i) {
    const auto& input = inputs[i % inputs.size()];
    auto t0 = Clock::now();
    auto sealed = replboot::archive::SealObject(key, "20261207T061500Z", i, input, level);
    auto t1 = Clock::now();
    if (!sealed) return std::fprintf(stderr, "%s\n", sealed.error().ToString().c_str()), 1;
    auto opened = replboot::archive::OpenObject(key, "20261207T061500Z", i, *sealed, mib << 20);
    auto t2 = Clock::now();
    if (!opened || *opened != input) return std::fprintf(stderr, "open failed\n"), 1;
    auto t3 = Clock::now();
    ZSTD_compressCCtx(cctx, frame.data(), frame.size(), input.data(), input.size(), level);
    zstd_s += std::chrono::duration<double>(Clock::now() - t3).count();
    seal_s += std::chrono::duration<double>(t1 - t0).count();
    open_s += std::chrono::duration<double>(t2 - t1).count();
    logical += input.size();
    stored += sealed->size();
  }
  ZSTD_freeCCtx(cctx);
  const double mb = static_cast<double>(logical) / 1e6;
  std::printf(
      "objects=%d object_mib=%zu zstd_level=%d ratio=%.3f seal_mb_s=%.0f open_mb_s=%.0f "
      "zstd_only_mb_s=%.0f\n",
      count, mib, level, static_cast<double>(stored) / static_cast<double>(logical), mb / seal_s,
      mb / open_s, mb / zstd_s);

  // The writer end to end into a memory store: Write() on this thread, seal + SHA-256 + Put on
  // its worker, then Finish() reading every object back.
  replboot::archive::testing::MemoryStore store;
  replboot::archive::WriterOptions options;
  options.backup_id = "20261207T061500Z";
  options.key = key;
  options.object_bytes = mib << 20;
  options.zstd_level = level;
  auto t0 = Clock::now();
  auto writer = replboot::archive::BackupWriter::Create(store, options);
  if (!writer) return 1;
  for (int i = 0; i < count; ++i) {
    const auto& input = inputs[i % inputs.size()];
    for (size_t at = 0; at < input.size(); at += 1 << 20) {
      if (!(*writer)->Write(std::span(input).subspan(at, 1 << 20)).ok()) return 1;
    }
  }
  replboot::archive::Manifest metadata;
  metadata.cluster_id = "bench";
  metadata.node = "bench";
  metadata.flavour = "mariadb";
  auto manifest = (*writer)->Finish(metadata);
  if (!manifest) return std::fprintf(stderr, "%s\n", manifest.error().ToString().c_str()), 1;
  const double writer_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("writer_mb_s=%.0f max_buffered_mib=%.1f\n", mb / writer_s,
              static_cast<double>((*writer)->max_buffered_bytes()) / (1 << 20));
  return 0;
}
