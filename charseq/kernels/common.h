// What the compiled recurrences (lstm.cc, gru.cc, through sequence.h) share: GCC vector types sized
// for the CPU they are built for, exp/sigmoid/tanh on vectors, row addressing of batch-major
// tensors, the recurrent weights packed and multiplied in float32 or in bfloat16, and the split of
// unit blocks and batch rows over threads and registers.

#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/threadpool.h"

namespace charseq {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;

#if defined(__AVX512F__)
constexpr int VL = 16;  // floats per vector
#elif defined(__AVX__)
constexpr int VL = 8;
#else
constexpr int VL = 4;
#endif

typedef float vf __attribute__((vector_size(VL * sizeof(float))));
typedef int vi __attribute__((vector_size(VL * sizeof(int))));
typedef unsigned vu __attribute__((vector_size(VL * sizeof(unsigned))));
typedef uint16_t vh __attribute__((vector_size(VL * sizeof(uint16_t))));

// s in every lane. (s - 0 is s for every float, so this is a plain broadcast; vf{} + s is not, as
// -0 + 0 is +0, and GCC would add a zero vector in the products' inner loops.)
inline vf splat(float s) { return s - vf{}; }

inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The first n lanes (1 <= n <= VL) of p, zeros in the rest.
inline vf load_n(const float* p, int n) {
  if (n == VL) return load(p);
  vf v = {};
  std::memcpy(&v, p, n * sizeof(float));
  return v;
}

inline void store_n(float* p, vf v, int n) {
  if (n == VL) {
    std::memcpy(p, &v, sizeof v);
  } else {
    std::memcpy(p, &v, n * sizeof(float));
  }
}

// exp(x) to about 2 ulp (Cephes' expf): 2^n times a polynomial on the remainder.
inline vf vexp(vf x) {
  x = x < splat(-87.0f) ? splat(-87.0f) : x;
  x = x > splat(88.0f) ? splat(88.0f) : x;
  const vf magic = splat(12582912.0f);  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  vf n = (x * splat(1.44269504088896341f) + magic) - magic;
  vf r = x - n * splat(0.693359375f) + n * splat(2.12194440e-4f);
  vf p = splat(1.9875691500e-4f);
  p = p * r + splat(1.3981999507e-3f);
  p = p * r + splat(8.3334519073e-3f);
  p = p * r + splat(4.1665795894e-2f);
  p = p * r + splat(1.6666665459e-1f);
  p = p * r + splat(5.0000001201e-1f);
  p = p * r * r + r + splat(1.0f);
  vi e = (__builtin_convertvector(n, vi) + 127) << 23;
  return p * reinterpret_cast<vf&>(e);
}

inline vf vsigmoid(vf x) { return splat(1.0f) / (splat(1.0f) + vexp(-x)); }
inline vf vtanh(vf x) { return splat(2.0f) / (splat(1.0f) + vexp(splat(-2.0f) * x)) - splat(1.0f); }

// Rows of a step: row b of an array starts at ptr + b * stride (stride T * width for a
// [B, T, width] sequence at step t, width for a [B, width] state).
struct Rows {
  float* ptr;
  size_t stride;
  float* row(int b) const { return ptr + b * stride; }
};

// ----------------------------------------------------------------------------- bfloat16
// The recurrent product h_{t-1} U (and d(gates) U^T backward) can take its two operands rounded
// to bfloat16 and accumulate in float32, as PyTorch's oneDNN LSTM does in bfloat16: the op's
// `recurrence` attribute. Everything else (gate arithmetic, states, outputs, gradients) stays
// float32. "bfloat16" runs on AMX tiles where the CPU has them (kTiles), else AVX512-BF16 dot
// products (kBfloat16; "bfloat16_avx512" takes that path even where AMX exists), both checked at
// run time, and otherwise rounds the operands and multiplies them in float32, which gives the same
// products up to the order of the float32 sums; "bfloat16_emulated" always takes that portable
// path (tests check each native path against it, and run it on CPUs without bf16).

enum class Recurrence { kFloat32, kBfloat16, kEmulated, kTiles };

#if defined(__AVX512F__)
#define CHARSEQ_BF16_TARGET __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl")))
constexpr int BF = 16;  // units per block of the bfloat16 panels: one AVX-512 vector, = VL here
#endif

#if defined(__AVX512F__) && defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#define CHARSEQ_AMX 1
#define CHARSEQ_AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl")))
#endif

// Whether this CPU (and this build: its blocks of VL units must be 16 floats) has AVX512-BF16.
inline bool native_bf16() {
#if defined(__AVX512F__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

// Whether this CPU has AMX tiles that multiply bfloat16 (Xeons since Sapphire Rapids) and Linux
// lets this process use them: the tile registers hold 8 KB of state, which Linux saves only for a
// process that asked for it (arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA, Linux 5.16 and later).
inline bool native_tiles() {
#if defined(CHARSEQ_AMX)
  static const bool usable = [] {
    unsigned a, b, c, d;
    constexpr unsigned kAmxBf16 = 1u << 22, kAmxTile = 1u << 24;  // CPUID leaf 7, EDX
    if (!native_bf16() || !__get_cpuid_count(7, 0, &a, &b, &c, &d) || (d & (kAmxBf16 | kAmxTile)) != (kAmxBf16 | kAmxTile))
      return false;
    constexpr long kRequestPermission = 0x1023, kTileData = 18;
    return syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
  }();
  return usable;
#else
  return false;
#endif
}

// The op's `recurrence` attribute: "bfloat16" runs on AMX tiles where the CPU has them, else on
// AVX512-BF16 ("bfloat16_avx512" always takes that path), else emulated.
inline void read_recurrence(OpKernelConstruction* ctx, Recurrence* mode) {
  std::string name;
  OP_REQUIRES_OK(ctx, ctx->GetAttr("recurrence", &name));
  if (name == "bfloat16" && native_tiles()) {
    *mode = Recurrence::kTiles;
  } else if (name == "bfloat16" || name == "bfloat16_avx512") {
    *mode = native_bf16() ? Recurrence::kBfloat16 : Recurrence::kEmulated;
  } else {
    *mode = name == "bfloat16_emulated" ? Recurrence::kEmulated : Recurrence::kFloat32;
  }
}

// Whether the product reads its left operand in bfloat16 (else in float32).
inline bool bf16_operand(Recurrence mode) { return mode == Recurrence::kBfloat16 || mode == Recurrence::kTiles; }

// AMX reads 32 values of depth at a time: the operand rows and the panels are zero-padded to that.
constexpr int kTileDepth = 32;

// The multiple of depth a mode's operand rows and panels are zero-padded to: the tiles' 32, the
// pairs of AVX512-BF16's dot products, none in float32 (and emulated).
inline int depth_multiple(Recurrence mode) {
  return mode == Recurrence::kTiles ? kTileDepth : mode == Recurrence::kBfloat16 ? 2 : 1;
}

// n rounded up to a multiple of `multiple`.
inline size_t padded(int n, int multiple) { return static_cast<size_t>(n + multiple - 1) / multiple * multiple; }

#define CHARSEQ_RECURRENCE_ATTR \
  "recurrence: {'float32', 'bfloat16', 'bfloat16_avx512', 'bfloat16_emulated'} = 'float32'"

// Round to the nearest bfloat16, ties to even (NaN and infinity stay what they are): the high 16
// bits of the result.
inline vu bf16_bits(vf x) {
  vu bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits + 0x7fffu + ((bits >> 16) & 1u);
}

inline vf round_bf16(vf x) {
  vu bits = bf16_bits(x) & 0xffff0000u;
  vf out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

// The same for one value: its bfloat16 bits, and the float32 it stands for.
inline uint16_t to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

inline float round_bf16(float x) {
  const uint32_t bits = static_cast<uint32_t>(to_bf16(x)) << 16;
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

// A whole vector's copy has a constant size, which GCC turns into one move; the n-lane copies of the
// last, partial unit block are calls to memcpy.
inline void store_bf16(uint16_t* p, vf x, int n) {
  const vh h = __builtin_convertvector(bf16_bits(x) >> 16, vh);
  if (n == VL) {
    std::memcpy(p, &h, sizeof h);
  } else {
    std::memcpy(p, &h, n * sizeof(uint16_t));
  }
}

// The first n lanes of n bfloat16 values at p, as floats (exact: a bfloat16 is a float's high half).
inline vf load_bf16_n(const uint16_t* p, int n) {
  vh h = {};
  if (n == VL) {
    std::memcpy(&h, p, sizeof h);
  } else {
    std::memcpy(&h, p, n * sizeof(uint16_t));
  }
  const vu bits = __builtin_convertvector(h, vu) << 16;
  vf out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

// Rows of a batch-major sequence: x W, which the forward ops read in float32 (its sum rounded to
// bfloat16 cost training quality), and, in float32 or, where the op's `io` attribute is bfloat16,
// in bfloat16, the gates' gradients the weight gradients' products read, the gates the forward
// pass stores for the backward pass, and the layer's outputs and their gradient: with a bfloat16
// recurrence those products and the next layer take and give bfloat16, and the ops read and write
// it as it is, without a conversion op over the whole sequence each way (and half the bytes).
struct IoRows {
  void* ptr = nullptr;  // float or uint16_t (bfloat16), as `bf16` says
  size_t stride = 0;    // elements between rows
  bool bf16 = false;

  explicit operator bool() const { return ptr != nullptr; }
  // The same rows from element `offset` on (null stays null).
  IoRows from(size_t offset) const {
    if (!ptr) return *this;
    return {bf16 ? static_cast<void*>(static_cast<uint16_t*>(ptr) + offset)
                 : static_cast<void*>(static_cast<float*>(ptr) + offset),
            stride, bf16};
  }
  const void* at(int b, int j) const {
    const size_t i = static_cast<size_t>(b) * stride + j;
    return bf16 ? static_cast<const void*>(static_cast<const uint16_t*>(ptr) + i)
                : static_cast<const void*>(static_cast<const float*>(ptr) + i);
  }
  vf load(int b, int j, int n) const {
    const size_t i = static_cast<size_t>(b) * stride + j;
    return bf16 ? load_bf16_n(static_cast<const uint16_t*>(ptr) + i, n) : load_n(static_cast<const float*>(ptr) + i, n);
  }
  void store(int b, int j, vf v, int n) const {
    const size_t i = static_cast<size_t>(b) * stride + j;
    if (bf16) {
      store_bf16(static_cast<uint16_t*>(ptr) + i, v, n);
    } else {
      store_n(static_cast<float*>(ptr) + i, v, n);
    }
  }
};

// The left operand of one step's recurrent product (h_{t-1} forward, d(gates)_{t+1} backward) in
// the form the product reads: float32 rows (rounded to bfloat16 values when emulated), or rows of
// bfloat16 (native), `stride` elements apart; row widths are padded with zeros there to even (to
// kTileDepth on AMX tiles).
struct Operand {
  float* f = nullptr;
  uint16_t* h = nullptr;
  size_t stride = 0;
  bool round = false;
  explicit operator bool() const { return f || h; }
  void store(int b, int j, vf v, int n) const {
    if (h) {
      store_bf16(h + b * stride + j, v, n);
    } else {
      store_n(f + b * stride + j, round ? round_bf16(v) : v, n);
    }
  }
};

// Two operand buffers of `rows` x `width`, written and read on alternate steps.
class OperandBuffers {
 public:
  OperandBuffers(Recurrence mode, int rows, int width) : mode_(mode) {
    stride_ = padded(width, depth_multiple(mode));
    if (bf16_operand(mode)) {
      h_.assign(2 * rows * stride_, 0);
    } else {
      f_.assign(2 * rows * stride_, 0.0f);
    }
    rows_ = rows;
  }
  Operand at(int parity) const {
    Operand o;
    const size_t offset = static_cast<size_t>(parity & 1) * rows_ * stride_;
    if (bf16_operand(mode_)) {
      o.h = const_cast<uint16_t*>(h_.data()) + offset;
    } else {
      o.f = const_cast<float*>(f_.data()) + offset;
      o.round = mode_ == Recurrence::kEmulated;
    }
    o.stride = stride_;
    return o;
  }
  // Buffer `parity` filled from `rows` x `width` floats `src_stride` apart.
  void fill(int parity, const float* src, size_t src_stride, int width) const {
    const Operand o = at(parity);
    for (int b = 0; b < rows_; ++b)
      for (int j = 0; j < width; j += VL) o.store(b, j, load_n(src + b * src_stride + j, std::min(VL, width - j)),
                                                  std::min(VL, width - j));
  }

 private:
  Recurrence mode_;
  int rows_ = 0;
  size_t stride_ = 0;
  std::vector<float> f_;
  std::vector<uint16_t> h_;
};

// ------------------------------------------------------------------ the recurrent weights, packed
// U is [u, G u] (G gates side by side, Keras' layout), packed once per call so that the per-step
// products read it contiguously. The packed panels are [blocks][depth / P][S][W][P]: for each block
// of W units, S streams of `depth` values each, zero-padded past u. The forward product h U reads the
// G gate columns of a block (depth u, S = G); the backward product dz U^T reads U^T's columns
// (depth G u, S = 1). Float32 packs one value per unit (P = 1, W = VL), rounded to bfloat16 values
// when emulated; native bfloat16 interleaves pairs of depth per unit (P = 2, W = BF), as
// vdpbf16ps reads them.

// The two recurrent products: h U forward, dz U^T backward.
enum class Pass { kForward, kBackward };

// U packed for `pass` in the layout above, each value through `convert` (to T). `rows` is U's
// number of rows: u for the recurrent matrix; forward only, an input matrix W ([rows, G u]) packs
// the same way with depth `rows`. The depth is padded with zeros to a multiple of `multiple`.
template <int W, int P, class T, class C>
std::vector<T> pack_panels(const float* U, int rows, int u, int G, Pass pass, const C& convert, int multiple = P) {
  const bool backward = pass == Pass::kBackward;
  const int S = backward ? 1 : G, depth = backward ? G * u : rows;
  const int blocks = (u + W - 1) / W, steps = padded(depth, multiple) / P;
  const size_t width = static_cast<size_t>(G) * u;
  std::vector<T> panels(static_cast<size_t>(blocks) * steps * S * W * P, T{});
  for (int jb = 0; jb < blocks; ++jb) {
    const int n = std::min(W, u - jb * W);
    T* block = panels.data() + static_cast<size_t>(jb) * steps * S * W * P;
    for (int k = 0; k < depth; ++k)
      for (int s = 0; s < S; ++s) {
        T* out = block + (static_cast<size_t>(k / P) * S + s) * W * P + k % P;
        if (backward) {  // U^T's column k: U's row k, across the block's units
          const float* in = U + static_cast<size_t>(jb) * W * width + k;
          for (int l = 0; l < n; ++l) out[l * P] = convert(in[l * width]);
        } else {  // U's row k, gate s, the block's units
          const float* in = U + k * width + s * u + jb * W;
          for (int l = 0; l < n; ++l) out[l * P] = convert(in[l]);
        }
      }
  }
  return panels;
}

// acc[r][s] += sum over k < depth of row r0 + r of x at k * stream s at k, for MR batch rows and
// NS streams: the register-blocked float32 product, its accumulators kept in registers for the
// caller's epilogue. The strides are compile-time where the layout fixes them: forward, the NS
// streams (the G gates of a block) interleave, VL floats apart at each k; backward, each stream is
// a whole block's panel (`panel_size` floats) with its values VL floats apart.
template <Pass P, int MR, int NS>
inline void float_product(const float* panel, size_t panel_size, int depth, const Operand& x, int r0,
                          vf (&acc)[MR][NS]) {
  constexpr bool forward = P == Pass::kForward;
  constexpr size_t kstride = forward ? NS * VL : VL;
  const size_t sstride = forward ? VL : panel_size;
  const float* row[MR];
  for (int r = 0; r < MR; ++r) row[r] = x.f + (r0 + r) * x.stride;
  // Summed in a local array, added to acc at the end: acc's address also goes to the bfloat16
  // products (calls, not inlined), and a float load in the loop could then alias it for all GCC
  // knows, which would keep acc in memory instead of registers (a third slower).
  vf sums[MR][NS] = {};
  for (int k = 0; k < depth; ++k) {
    const float* p = panel + k * kstride;
    vf w[NS];
    for (int s = 0; s < NS; ++s) w[s] = load(p + s * sstride);
    for (int r = 0; r < MR; ++r) {
      const vf xs = splat(row[r][k]);
      for (int s = 0; s < NS; ++s) sums[r][s] += xs * w[s];
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int s = 0; s < NS; ++s) acc[r][s] += sums[r][s];
}

#if defined(__AVX512F__)
// The same product with x in bfloat16, the panels holding pairs of depth per unit (2 BF elements
// per stream and pair; backward, a block's panel is `panel_size` elements): vdpbf16ps adds two
// products per float32 lane and instruction.
template <Pass P, int MR, int NS>
CHARSEQ_BF16_TARGET void bf16_product(const uint16_t* panel, size_t panel_size, int depth, const Operand& x, int r0,
                                      vf (&acc)[MR][NS]) {
  constexpr bool forward = P == Pass::kForward;
  constexpr size_t lanes = 2 * BF, pstride = forward ? NS * lanes : lanes;
  const size_t sstride = forward ? lanes : panel_size;
  __m512 c[MR][NS];
  for (int r = 0; r < MR; ++r)
    for (int s = 0; s < NS; ++s) c[r][s] = _mm512_setzero_ps();
  const uint16_t* row[MR];
  for (int r = 0; r < MR; ++r) row[r] = x.h + (r0 + r) * x.stride;
  const int pairs = (depth + 1) / 2;
  for (int kp = 0; kp < pairs; ++kp) {
    __m512bh w[NS];
    for (int s = 0; s < NS; ++s) w[s] = (__m512bh)_mm512_loadu_si512(panel + s * sstride + kp * pstride);
    for (int r = 0; r < MR; ++r) {
      int32_t pair;
      std::memcpy(&pair, row[r] + 2 * kp, sizeof pair);
      const __m512bh xs = (__m512bh)_mm512_set1_epi32(pair);
      for (int s = 0; s < NS; ++s) c[r][s] = _mm512_dpbf16_ps(c[r][s], xs, w[s]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int s = 0; s < NS; ++s) {
      vf v;
      std::memcpy(&v, &c[r][s], sizeof v);
      acc[r][s] += v;
    }
}
#endif

#if defined(CHARSEQ_AMX)
// The same product on AMX tiles, for up to 16 rows (MR) and 4 streams: one tile instruction
// multiplies 16 rows of 32 bfloat16 values of depth (tile 4) by a stream's 32 x 16 block of the
// panels (tiles 5-7, which already hold depth in pairs per unit as the tiles read them) and adds
// to the stream's 16 rows x 16 units of float32 sums (tiles 0-3). The operand rows and the panels
// are zero-padded to a multiple of 32 of depth (kTileDepth).
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

template <int MR>
CHARSEQ_AMX_TARGET inline void configure_tiles() {
  static const TileConfig config = [] {
    TileConfig c;
    for (int t = 0; t < 8; ++t) {
      c.rows[t] = t < 5 ? MR : 16;
      c.bytes_per_row[t] = 64;
    }
    return c;
  }();
  // Every call: the tiles are the thread's, and TensorFlow's own products (oneDNN) configure them
  // differently on the same threads between two steps.
  _tile_loadconfig(&config);
}

// Tiles 0 to NS - 1 = the rows of x from r0 (as many as the tiles are configured for) times NS
// streams of the panels, left in the tiles (tile_store takes them out); between(i, steps) after
// each of the `steps` steps of depth, so that a caller can give the vector units work of its own
// while the tile instructions of the next step wait for the ones before.
template <Pass P, int NS, class Between>
CHARSEQ_AMX_TARGET __attribute__((always_inline)) inline void tile_multiply(
    const uint16_t* panel, size_t panel_size, int depth, const Operand& x, int r0, const Between& between) {
  static_assert(NS >= 1 && NS <= 4, "AMX: up to 4 streams");
  constexpr bool forward = P == Pass::kForward;
  constexpr size_t lanes = 2 * BF, pstride = forward ? NS * lanes : lanes;
  const size_t sstride = forward ? lanes : panel_size, xstride = x.stride * sizeof(uint16_t);
  constexpr size_t pbytes = pstride * sizeof(uint16_t);
  _tile_zero(0);
  if constexpr (NS > 1) _tile_zero(1);
  if constexpr (NS > 2) _tile_zero(2);
  if constexpr (NS > 3) _tile_zero(3);
  const uint16_t* rows = x.h + r0 * x.stride;
  const int steps = (depth + kTileDepth - 1) / kTileDepth;  // the rows and panels are zero-padded
  for (int i = 0; i < steps; ++i) {
    const int k = i * kTileDepth;
    const uint16_t* p = panel + k / 2 * pstride;
    _tile_loadd(4, rows + k, xstride);
    _tile_loadd(5, p, pbytes);
    _tile_dpbf16ps(0, 4, 5);
    if constexpr (NS > 1) {
      _tile_loadd(6, p + sstride, pbytes);
      _tile_dpbf16ps(1, 4, 6);
    }
    if constexpr (NS > 2) {
      _tile_loadd(7, p + 2 * sstride, pbytes);
      _tile_dpbf16ps(2, 4, 7);
    }
    if constexpr (NS > 3) {
      _tile_loadd(5, p + 3 * sstride, pbytes);
      _tile_dpbf16ps(3, 4, 5);
    }
    between(i, steps);
  }
}

// The sums of tiles 0 to NS - 1, MR rows of 16 each.
template <int NS, int MR>
CHARSEQ_AMX_TARGET __attribute__((always_inline)) inline void tile_store(float (&sums)[NS][MR][16]) {
  _tile_stored(0, sums[0], 64);
  if constexpr (NS > 1) _tile_stored(1, sums[1], 64);
  if constexpr (NS > 2) _tile_stored(2, sums[2], 64);
  if constexpr (NS > 3) _tile_stored(3, sums[3], 64);
}

template <Pass P, int MR, int NS>
CHARSEQ_AMX_TARGET void tile_product(const uint16_t* panel, size_t panel_size, int depth, const Operand& x, int r0,
                                     vf (&acc)[MR][NS]) {
  static_assert(MR >= 1 && MR <= 16, "AMX: up to 16 rows");
  configure_tiles<MR>();
  tile_multiply<P, NS>(panel, panel_size, depth, x, r0, [](int, int) {});
  alignas(64) float sums[NS][MR][16];
  tile_store(sums);
  for (int r = 0; r < MR; ++r)
    for (int s = 0; s < NS; ++s) acc[r][s] += load(sums[s][r]);
}
#endif

// The recurrent weights of one call packed for one pass's product in the call's mode.
class Panels {
 public:
  Panels(const float* U, int u, int G, Recurrence mode, Pass pass)
      : depth_(pass == Pass::kBackward ? G * u : u), mode_(mode) {
#if defined(__AVX512F__)
    if (bf16_operand(mode)) {
      h_ = pack_panels<BF, 2, uint16_t>(U, u, u, G, pass, [](float v) { return to_bf16(v); },
                                        depth_multiple(mode));
      return;
    }
#endif
    if (mode == Recurrence::kEmulated) {
      f_ = pack_panels<VL, 1, float>(U, u, u, G, pass, [](float v) { return round_bf16(v); });
    } else {
      f_ = pack_panels<VL, 1, float>(U, u, u, G, pass, [](float v) { return v; });
    }
  }

#if defined(CHARSEQ_AMX)
  // In the AMX tiles' mode, with the tiles configured for 16 rows: charseq::tile_multiply of the
  // streams of product() below, the sums left in the tiles.
  template <Pass P, int NS, class Between>
  CHARSEQ_AMX_TARGET __attribute__((always_inline)) void tile_multiply(const Operand& x, int r0, int first,
                                                                       const Between& between) const {
    constexpr size_t S = P == Pass::kForward ? NS : 1;
    const size_t block = padded(depth_, kTileDepth) * S * BF;
    charseq::tile_multiply<P, NS>(h_.data() + first / S * block + first % S * 2 * BF, block, depth_, x, r0, between);
  }
#endif

  // acc[r][s] += row r0 + r of x times stream first + s, for MR rows and NS streams numbered across
  // blocks (stream i is stream i % S of block i / S), panels packed for pass P: forward, the G gates
  // of one block (first a multiple of G, NS = G = S); backward, NS consecutive blocks (S = 1).
  template <Pass P, int MR, int NS>
  void product(const Operand& x, int r0, int first, vf (&acc)[MR][NS]) const {
    constexpr size_t S = P == Pass::kForward ? NS : 1;
#if defined(__AVX512F__)
    if (x.h) {
      const size_t block = padded(depth_, depth_multiple(mode_)) * S * BF;
      const uint16_t* panel = h_.data() + first / S * block + first % S * 2 * BF;
#if defined(CHARSEQ_AMX)
      if (mode_ == Recurrence::kTiles) {
        if constexpr (MR <= 16 && NS <= 4) return tile_product<P, MR, NS>(panel, block, depth_, x, r0, acc);
      }
#endif
      bf16_product<P, MR, NS>(panel, block, depth_, x, r0, acc);
      return;
    }
#endif
    const size_t block = depth_ * S * VL;
    float_product<P, MR, NS>(f_.data() + first / S * block + first % S * VL, block, depth_, x, r0, acc);
  }

 private:
  int depth_;
  Recurrence mode_;
  std::vector<float> f_;     // float32 and emulated
  std::vector<uint16_t> h_;  // native bfloat16
};

// ------------------------------------------------------------------------------ batch rows in groups
// The register-blocked products handle MR batch rows at a time, MR a compile-time constant so that
// the accumulators stay in registers: block(std::integral_constant<int, MR>{}, r0) for each group
// of MR rows of [0, B), and the rows left over as one smaller group of its own size. The 16 rows of
// the AMX tiles leave theirs in groups of 8, 4, 2 and 1 instead: 5 sizes to compile, not 16.

template <int MR, class F>
void row_remainder(int rows, int r0, const F& block) {
  if (rows == MR) {
    block(std::integral_constant<int, MR>{}, r0);
  } else if constexpr (MR > 1) {
    row_remainder<MR - 1>(rows, r0, block);
  }
}

template <int MR, class F>
void row_halves(int B, int r0, const F& block) {
  for (; r0 + MR <= B; r0 += MR) block(std::integral_constant<int, MR>{}, r0);
  if constexpr (MR > 1) {
    if (r0 < B) row_halves<MR / 2>(B, r0, block);
  }
}

template <int MR, class F>
void for_row_groups(int B, const F& block) {
  if constexpr (MR >= 16) {
    row_halves<MR>(B, 0, block);
  } else {
    int r0 = 0;
    for (; r0 + MR <= B; r0 += MR) block(std::integral_constant<int, MR>{}, r0);
    if (r0 < B) row_remainder<MR - 1>(B - r0, r0, block);
  }
}


// ------------------------------------------------------------------------------ threads
// The work of one step split over the op's threads: items of NB unit blocks by a chunk of batch
// rows, handed out from a shared count, the calling thread's from the first item on and the
// helpers' from the last back (see Team). The calling thread starts on them at once and the others
// join as they wake, so a thread that wakes late does less instead of holding up the step. Each
// item computes its outputs in a fixed order whichever thread takes it, so the results do not
// depend on the thread count or on scheduling.
class Shards {
 public:
  // `serial`: everything on the calling thread.
  Shards(OpKernelContext* ctx, int blocks, bool serial = false) : blocks_(blocks) {
    const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    pool_ = workers->workers;
    threads_ = serial ? 1 : std::max(1, workers->num_threads);
  }

  // The batch rows of one item, for run<MR, ...>: whatever thread takes an item, it computes all of
  // them, one row after the other.
  template <int MR>
  static constexpr int chunk_rows() {
    return kChunkGroups * MR;
  }

  // block(rows, nb, r0, jb) for each group of rows of [first, first + B) (rows:
  // std::integral_constant, as in for_row_groups) and NB unit blocks from jb (nb:
  // std::integral_constant; the blocks past the last whole NB one at a time); returns when every
  // item is done.
  template <int MR, int NB, class F>
  void run(int B, const F& block, int first = 0) const {
    run_chunks<MR, NB>(B, [&](auto nb, int r0, int rows, int jb) {
      for_row_groups<MR>(rows, [&](auto mr, int r) { block(mr, nb, r0 + r, jb); });
    }, first);
  }

  // The same items, whole: chunk(nb, r0, rows, jb) for the item of rows [r0, r0 + rows) and nb
  // unit blocks from jb, for a caller that orders the work of its row groups itself.
  template <int MR, int NB, class F>
  void run_chunks(int B, const F& chunk_of, int first = 0) const {
    const int whole = blocks_ / NB, groups = whole + blocks_ % NB;  // NB blocks each, then single ones
    const int chunk = chunk_rows<MR>(), chunks = std::max(1, (B + chunk - 1) / chunk);
    each(groups * chunks, [&](int i) {
      const int g = i / chunks, r0 = i % chunks * chunk, rows = std::min(chunk, B - r0);
      if (g < whole) {
        chunk_of(std::integral_constant<int, NB>{}, first + r0, rows, g * NB);
      } else {
        chunk_of(std::integral_constant<int, 1>{}, first + r0, rows, whole * NB + (g - whole));
      }
    });
  }

  // The rows [0, B) in one part per thread, each a multiple of `multiple` rows (the last the rest):
  // part(first, count) for each, handed out as the items above; false, with nothing run, where that
  // leaves a single part.
  template <class F>
  bool each_part(int B, int multiple, const F& part) const {
    const int per = static_cast<int>(padded((B + threads_ - 1) / threads_, multiple));
    if (per >= B) return false;
    each((B + per - 1) / per, [&](int i) { part(i * per, std::min(per, B - i * per)); });
    return true;
  }

  // item(i) for each i in [0, items), handed out to the threads as above; returns when all are done.
  template <class F>
  void each(int items, const F& item) const {
    const int helpers = std::min(threads_, items) - 1;
    if (helpers <= 0) {
      for (int i = 0; i < items; ++i) item(i);
      return;
    }
    // A helper that wakes after the items are all taken returns without touching the caller's
    // frame, which may be gone by then: it holds the counters through its own reference.
    const auto team = std::make_shared<Team>();
    const std::function<void(int)> work = item;
    for (int h = 0; h < helpers; ++h)
      pool_->Schedule([team, run_item = &work, items] { team->work(run_item, items, true); });
    team->work(&work, items, false);
    team->wait(items);
  }

 private:
  static constexpr int kChunkGroups = 4;  // register row groups per item

  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  struct Team {
    std::atomic<int> taken{0}, front{0}, back{0}, done{0};
    // Items until none is left: the caller's from the first on, the helpers' from the last back,
    // so that from one step to the next each thread mostly takes the same unit blocks and their
    // packed weights stay in its own core's cache. `run_item` is only called on an item taken
    // here, which the caller is still waiting for.
    void work(const std::function<void(int)>* run_item, int items, bool from_back) {
      while (taken.fetch_add(1, std::memory_order_relaxed) < items) {
        const int i = from_back ? items - 1 - back.fetch_add(1, std::memory_order_relaxed)
                                : front.fetch_add(1, std::memory_order_relaxed);
        (*run_item)(i);
        done.fetch_add(1, std::memory_order_release);
      }
    }
    // Until the last item taken elsewhere is done: at most one item's time, so spin, then yield.
    void wait(int items) const {
      for (int spins = 0; done.load(std::memory_order_acquire) < items; ++spins) {
        if (spins < 4096) {
          pause();
        } else {
          std::this_thread::yield();
        }
      }
    }
  };

  int blocks_, threads_;
  tensorflow::thread::ThreadPool* pool_;
};

}  // namespace charseq
