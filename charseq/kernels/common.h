// What the compiled recurrences (lstm.cc, gru.cc) share: GCC vector types sized for the CPU
// they are built for, exp/sigmoid/tanh on vectors, the split of unit blocks over threads, row
// addressing of batch-major tensors, and the recurrent product in float32 or in bfloat16.

#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/blocking_counter.h"
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

inline vf splat(float s) { return vf{} + s; }

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

// Runs f(0) .. f(n-1), f(0) on the calling thread, and returns when all are done.
template <class F>
void run_shards(tensorflow::thread::ThreadPool* pool, int n, const F& f) {
  if (n <= 1) {
    f(0);
    return;
  }
  tensorflow::BlockingCounter done(n - 1);
  for (int s = 1; s < n; ++s) {
    pool->Schedule([&f, &done, s] {
      f(s);
      done.DecrementCount();
    });
  }
  f(0);
  done.Wait();
}

// Unit blocks [begin, end) of shard s of n: contiguous, as even as possible.
inline void shard_range(int blocks, int n, int s, int* begin, int* end) {
  *begin = static_cast<int>(static_cast<long long>(blocks) * s / n);
  *end = static_cast<int>(static_cast<long long>(blocks) * (s + 1) / n);
}

inline int num_shards(OpKernelContext* ctx, int blocks) {
  int threads = ctx->device()->tensorflow_cpu_worker_threads()->num_threads;
  return std::max(1, std::min(threads, blocks));
}

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
// float32. "bfloat16" runs AVX512-BF16 dot products where the CPU has them (checked at run time,
// so the library built on any CPU loads everywhere it was built) and otherwise rounds the
// operands and multiplies them in float32, which gives the same products up to the order of the
// float32 sums; "bfloat16_emulated" always takes that portable path (tests check one against the
// other, and the portable one on CPUs without bf16).

enum class Recurrence { kFloat32, kBfloat16, kEmulated };

#if defined(__AVX512F__)
#include <immintrin.h>
#define CHARSEQ_BF16_TARGET __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl")))
constexpr int BF = 16;  // units per block of the bfloat16 panels: one AVX-512 vector, = VL here
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

// The op's `recurrence` attribute: "bfloat16" becomes kEmulated where the CPU has no AVX512-BF16.
inline void read_recurrence(OpKernelConstruction* ctx, Recurrence* mode) {
  std::string name;
  OP_REQUIRES_OK(ctx, ctx->GetAttr("recurrence", &name));
  if (name == "bfloat16") {
    *mode = native_bf16() ? Recurrence::kBfloat16 : Recurrence::kEmulated;
  } else {
    *mode = name == "bfloat16_emulated" ? Recurrence::kEmulated : Recurrence::kFloat32;
  }
}

#define CHARSEQ_RECURRENCE_ATTR "recurrence: {'float32', 'bfloat16', 'bfloat16_emulated'} = 'float32'"

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

inline uint16_t to_bf16(float x) {
  vf v = splat(x);
  return static_cast<uint16_t>(bf16_bits(v)[0] >> 16);
}

inline void store_bf16(uint16_t* p, vf x, int n) {
  const vh h = __builtin_convertvector(bf16_bits(x) >> 16, vh);
  std::memcpy(p, &h, n * sizeof(uint16_t));
}

// The left operand of one step's recurrent product (h_{t-1} forward, d(gates)_{t+1} backward) in
// the form the product reads: float32 rows (rounded to bfloat16 values when emulated), or rows of
// bfloat16 (native), `stride` elements apart; row widths are padded to even with zeros there.
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
    stride_ = mode == Recurrence::kBfloat16 ? static_cast<size_t>(width + 1) / 2 * 2 : width;
    if (mode == Recurrence::kBfloat16) {
      h_.assign(2 * rows * stride_, 0);
    } else {
      f_.assign(2 * rows * stride_, 0.0f);
    }
    rows_ = rows;
  }
  Operand at(int parity) const {
    Operand o;
    const size_t offset = static_cast<size_t>(parity & 1) * rows_ * stride_;
    if (mode_ == Recurrence::kBfloat16) {
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
// products read it contiguously, zero-padded past u in the last block of VL units. Emulated
// bfloat16 rounds the packed values; native bfloat16 packs pairs of rows (below).

// For h U (forward): [blocks][u][G][VL], the G gate columns of each block of VL units.
inline std::vector<float> forward_panels(const float* U, int u, int G, bool round = false) {
  const int blocks = (u + VL - 1) / VL;
  std::vector<float> panels(static_cast<size_t>(blocks) * u * G * VL, 0.0f);
  for (int jb = 0; jb < blocks; ++jb)
    for (int k = 0; k < u; ++k)
      for (int g = 0; g < G; ++g)
        for (int l = 0; l < VL && jb * VL + l < u; ++l)
          panels[((static_cast<size_t>(jb) * u + k) * G + g) * VL + l] = U[static_cast<size_t>(k) * G * u + g * u + jb * VL + l];
  if (round)
    for (size_t i = 0; i < panels.size(); i += VL) store_n(&panels[i], round_bf16(load(&panels[i])), VL);
  return panels;
}

// For dz U^T (backward): [blocks][G u][VL], U^T's columns of each block of VL units.
inline std::vector<float> backward_panels(const float* U, int u, int G, bool round = false) {
  const int blocks = (u + VL - 1) / VL, width = G * u;
  std::vector<float> panels(static_cast<size_t>(blocks) * width * VL, 0.0f);
  for (int jb = 0; jb < blocks; ++jb)
    for (int k = 0; k < width; ++k)
      for (int l = 0; l < VL && jb * VL + l < u; ++l)
        panels[(static_cast<size_t>(jb) * width + k) * VL + l] = U[static_cast<size_t>(jb * VL + l) * width + k];
  if (round)
    for (size_t i = 0; i < panels.size(); i += VL) store_n(&panels[i], round_bf16(load(&panels[i])), VL);
  return panels;
}

// acc[r][g] += sum over k < u of row r0 + r of x at k * (block's gate g panel at k): the forward
// product h U for MR batch rows and the G gates of one unit block, kept in registers.
template <int MR, int G>
inline void forward_product(const float* panels, int u, const Operand& x, int r0, int block, vf (&acc)[MR][G]) {
  const float* panel = panels + static_cast<size_t>(block) * u * G * VL;
  const float* row[MR];
  for (int r = 0; r < MR; ++r) row[r] = x.f + (r0 + r) * x.stride;
  for (int k = 0; k < u; ++k) {
    const float* p = panel + k * G * VL;
    vf bg[G];
    for (int g = 0; g < G; ++g) bg[g] = load(p + g * VL);
    for (int r = 0; r < MR; ++r) {
      const vf xs = splat(row[r][k]);
      for (int g = 0; g < G; ++g) acc[r][g] += xs * bg[g];
    }
  }
}

// acc[r][q] += sum over k < width of rows.row(r0 + r)[k] * (block + q)'s panel at k: the backward
// product dz U^T for MR batch rows and NB unit blocks, kept in registers for the caller's epilogue.
template <int MR, int NB>
inline void backward_product(const float* panels, int width, Rows rows, int r0, int block, vf (&acc)[MR][NB]) {
  const float* panel[NB];
  const float* row[MR];
  for (int q = 0; q < NB; ++q) panel[q] = panels + static_cast<size_t>(block + q) * width * VL;
  for (int r = 0; r < MR; ++r) row[r] = rows.row(r0 + r);
  for (int k = 0; k < width; ++k) {
    vf bq[NB];
    for (int q = 0; q < NB; ++q) bq[q] = load(panel[q] + k * VL);
    for (int r = 0; r < MR; ++r) {
      const vf x = splat(row[r][k]);
      for (int q = 0; q < NB; ++q) acc[r][q] += x * bq[q];
    }
  }
}

#if defined(__AVX512F__)
// Native bfloat16 panels: pairs of rows k, k+1 of the operand's depth interleaved per unit, as
// _mm512_dpbf16_ps reads them: [blocks][depth / 2][S][BF][2], S streams per block (forward: the G
// gate columns of a block of units; backward: S = 1, U^T's columns), zero-padded. value(k, s, j)
// gives the element at depth k of stream s for unit j of [0, u).
template <class V>
std::vector<uint16_t> pair_panels(int u, int depth, int S, const V& value) {
  const int blocks = (u + BF - 1) / BF, pairs = (depth + 1) / 2;
  std::vector<uint16_t> panels(static_cast<size_t>(blocks) * pairs * S * BF * 2, 0);
  for (int jb = 0; jb < blocks; ++jb)
    for (int k = 0; k < depth; ++k)
      for (int s = 0; s < S; ++s)
        for (int l = 0; l < BF && jb * BF + l < u; ++l)
          panels[(((static_cast<size_t>(jb) * pairs + k / 2) * S + s) * BF + l) * 2 + k % 2] = to_bf16(value(k, s, jb * BF + l));
  return panels;
}

inline std::vector<uint16_t> forward_pairs(const float* U, int u, int G) {
  return pair_panels(u, u, G, [&](int k, int g, int j) { return U[static_cast<size_t>(k) * G * u + g * u + j]; });
}

inline std::vector<uint16_t> backward_pairs(const float* U, int u, int G) {
  return pair_panels(u, G * u, 1, [&](int k, int, int j) { return U[static_cast<size_t>(j) * G * u + k]; });
}

// acc[r][s] += the product of row r0 + r of x (bfloat16, `depth` wide) with stream s of the
// panels from `panel`, streams `sstride` and pairs `pstride` elements apart: vdpbf16ps adds two
// products per float32 lane and instruction.
template <int MR, int S>
CHARSEQ_BF16_TARGET void bf16_product(const uint16_t* panel, size_t sstride, size_t pstride, int depth,
                                      const Operand& x, int r0, vf (&acc)[MR][S]) {
  __m512 c[MR][S];
  for (int r = 0; r < MR; ++r)
    for (int s = 0; s < S; ++s) c[r][s] = _mm512_setzero_ps();
  const uint16_t* row[MR];
  for (int r = 0; r < MR; ++r) row[r] = x.h + (r0 + r) * x.stride;
  const int pairs = (depth + 1) / 2;
  for (int kp = 0; kp < pairs; ++kp) {
    __m512bh w[S];
    for (int s = 0; s < S; ++s) w[s] = (__m512bh)_mm512_loadu_si512(panel + s * sstride + kp * pstride);
    for (int r = 0; r < MR; ++r) {
      int32_t pair;
      std::memcpy(&pair, row[r] + 2 * kp, sizeof pair);
      const __m512bh xs = (__m512bh)_mm512_set1_epi32(pair);
      for (int s = 0; s < S; ++s) c[r][s] = _mm512_dpbf16_ps(c[r][s], xs, w[s]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int s = 0; s < S; ++s) {
      vf v;
      std::memcpy(&v, &c[r][s], sizeof v);
      acc[r][s] += v;
    }
}
#endif

// The recurrent weights of one call packed for the products of its mode.
struct Panels {
  Recurrence mode;
  std::vector<float> f;      // float32 and emulated
  std::vector<uint16_t> h;   // native bfloat16
};

inline Panels pack_forward(const float* U, int u, int G, Recurrence mode) {
  Panels p{mode};
#if defined(__AVX512F__)
  if (mode == Recurrence::kBfloat16) {
    p.h = forward_pairs(U, u, G);
    return p;
  }
#endif
  p.f = forward_panels(U, u, G, mode == Recurrence::kEmulated);
  return p;
}

inline Panels pack_backward(const float* U, int u, int G, Recurrence mode) {
  Panels p{mode};
#if defined(__AVX512F__)
  if (mode == Recurrence::kBfloat16) {
    p.h = backward_pairs(U, u, G);
    return p;
  }
#endif
  p.f = backward_panels(U, u, G, mode == Recurrence::kEmulated);
  return p;
}

// h U for MR rows and the G gates of unit block `block`, in the panels' mode.
template <int MR, int G>
inline void recurrent_forward(const Panels& p, int u, const Operand& x, int r0, int block, vf (&acc)[MR][G]) {
#if defined(__AVX512F__)
  if (x.h) {
    const size_t pairs = (u + 1) / 2;
    bf16_product<MR, G>(p.h.data() + block * pairs * G * BF * 2, BF * 2, G * BF * 2, u, x, r0, acc);
    return;
  }
#endif
  forward_product<MR, G>(p.f.data(), u, x, r0, block, acc);
}

// dz U^T (dz `width` = G u wide) for MR rows and NB unit blocks from `block`, in the panels' mode.
template <int MR, int NB>
inline void recurrent_backward(const Panels& p, int width, const Operand& x, int r0, int block, vf (&acc)[MR][NB]) {
#if defined(__AVX512F__)
  if (x.h) {
    const size_t pairs = (width + 1) / 2;
    bf16_product<MR, NB>(p.h.data() + block * pairs * BF * 2, pairs * BF * 2, BF * 2, width, x, r0, acc);
    return;
  }
#endif
  backward_product<MR, NB>(p.f.data(), width, Rows{x.f, x.stride}, r0, block, acc);
}

// ------------------------------------------------------------------------------ batch rows in groups
// The register-blocked products handle MR batch rows at a time, MR a compile-time constant so that
// the accumulators stay in registers: block(std::integral_constant<int, MR>{}, r0) for each group
// of MR rows of [0, B), and the rows left over as one smaller group of its own size.

template <int MR, class F>
void row_remainder(int rows, int r0, const F& block) {
  if (rows == MR) {
    block(std::integral_constant<int, MR>{}, r0);
  } else if constexpr (MR > 1) {
    row_remainder<MR - 1>(rows, r0, block);
  }
}

template <int MR, class F>
void for_row_groups(int B, const F& block) {
  int r0 = 0;
  for (; r0 + MR <= B; r0 += MR) block(std::integral_constant<int, MR>{}, r0);
  if (r0 < B) row_remainder<MR - 1>(B - r0, r0, block);
}

}  // namespace charseq
