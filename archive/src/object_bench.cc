// Seal/open throughput of one core on sysbench-like pages (not a test; see CMakeLists.txt):
//   archive_object_bench [object MiB = 16] [zstd level = 1] [objects = 16]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "memory_store_test_util.h"
#include "replboot/archive/keys.h"
#include "replboot/archive/object.h"

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
  double seal_s = 0, open_s = 0;
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
    seal_s += std::chrono::duration<double>(t1 - t0).count();
    open_s += std::chrono::duration<double>(t2 - t1).count();
    logical += input.size();
    stored += sealed->size();
  }
  const double mb = static_cast<double>(logical) / 1e6;
  std::printf("objects=%d object_mib=%zu zstd_level=%d ratio=%.3f seal_mb_s=%.0f open_mb_s=%.0f\n",
              count, mib, level, static_cast<double>(stored) / static_cast<double>(logical),
              mb / seal_s, mb / open_s);
  return 0;
}
