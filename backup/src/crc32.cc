#include "crc32.h"

#include <zlib.h>

#include <climits>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace replboot::backup {
namespace {

uint32_t ZlibCrc32(uint32_t crc, const uint8_t* data, size_t n) {
  // zlib takes a uInt length; feed it in slices so a > 4 GiB buffer is fine too.
  while (n > 0) {
    uInt piece = n > UINT_MAX ? UINT_MAX : static_cast<uInt>(n);
    crc = static_cast<uint32_t>(::crc32(crc, data, piece));
    data += piece;
    n -= piece;
  }
  return crc;
}

#if defined(__x86_64__)
// Folding CRC with carry-less multiplication (Gopal et al., "Fast CRC Computation
// for Generic Polynomials Using PCLMULQDQ", Intel 2009), for the bit-reflected
// polynomial. Each constant is x^n mod P, bit-reflected and shifted left by one;
// they were recomputed from P when this file was written:
//   fold 4x128 bits: n = 544, 480; fold 128 bits: n = 160, 96; 64 -> 32: n = 64;
//   Barrett: P' = 0x1DB710641 and mu = floor(x^64 / P) reflected.
#define REPLBOOT_PCLMUL __attribute__((target("pclmul,sse4.1")))
REPLBOOT_PCLMUL inline __m128i Load(const uint8_t* q) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
}
// One fold step: x * k (both 64-bit halves) xor next.
REPLBOOT_PCLMUL inline __m128i Fold(__m128i x, __m128i k, __m128i next) {
  __m128i lo = _mm_clmulepi64_si128(x, k, 0x00);
  __m128i hi = _mm_clmulepi64_si128(x, k, 0x11);
  return _mm_xor_si128(_mm_xor_si128(hi, lo), next);
}

// `state` is the raw register (already inverted); `n` is a multiple of 16, >= 64.
REPLBOOT_PCLMUL uint32_t FoldPclmul(uint32_t state, const uint8_t* p,
                                                               size_t n) {
  const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596, 0x0154442bd4);
  const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009e, 0x01751997d0);
  const __m128i k5 = _mm_set_epi64x(0, 0x0163cd6124);
  const __m128i poly_mu = _mm_set_epi64x(0x01f7011641, 0x01db710641);
  const __m128i low32 = _mm_setr_epi32(~0, 0, ~0, 0);

  __m128i x1 = _mm_xor_si128(Load(p), _mm_cvtsi32_si128(static_cast<int>(state)));
  __m128i x2 = Load(p + 16);
  __m128i x3 = Load(p + 32);
  __m128i x4 = Load(p + 48);
  p += 64;
  n -= 64;
  while (n >= 64) {
    x1 = Fold(x1, k1k2, Load(p));
    x2 = Fold(x2, k1k2, Load(p + 16));
    x3 = Fold(x3, k1k2, Load(p + 32));
    x4 = Fold(x4, k1k2, Load(p + 48));
    p += 64;
    n -= 64;
  }
  // Four lanes into one.
  x1 = Fold(x1, k3k4, x2);
  x1 = Fold(x1, k3k4, x3);
  x1 = Fold(x1, k3k4, x4);
  while (n >= 16) {
    x1 = Fold(x1, k3k4, Load(p));
    p += 16;
    n -= 16;
  }
  // 128 -> 64 bits.
  __m128i x2r = _mm_clmulepi64_si128(x1, k3k4, 0x10);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2r);
  // 64 -> 32 bits.
  x2r = _mm_srli_si128(x1, 4);
  x1 = _mm_and_si128(x1, low32);
  x1 = _mm_clmulepi64_si128(x1, k5, 0x00);
  x1 = _mm_xor_si128(x1, x2r);
  // Barrett reduction to the 32-bit remainder.
  x2r = _mm_and_si128(x1, low32);
  x2r = _mm_clmulepi64_si128(x2r, poly_mu, 0x10);
  x2r = _mm_and_si128(x2r, low32);
  x2r = _mm_clmulepi64_si128(x2r, poly_mu, 0x00);
  x1 = _mm_xor_si128(x1, x2r);
  return static_cast<uint32_t>(_mm_extract_epi32(x1, 1));
}

bool HavePclmul() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) return false;
  return (c & bit_PCLMUL) != 0 && (c & bit_SSE4_1) != 0;
}
#endif

}  // namespace

uint32_t Crc32(uint32_t crc, const uint8_t* data, size_t n) {
#if defined(__x86_64__)
  static const bool have_pclmul = HavePclmul();
  if (have_pclmul && n >= 64) {
    size_t bulk = n & ~static_cast<size_t>(15);
    crc = ~FoldPclmul(~crc, data, bulk);
    data += bulk;
    n -= bulk;
  }
#endif
  return n == 0 ? crc : ZlibCrc32(crc, data, n);
}

}  // namespace replboot::backup
