// What the compiled recurrences (lstm.cc, gru.cc) share: GCC vector types sized for the CPU
// they are built for, exp/sigmoid/tanh on vectors, the split of unit blocks over threads, and
// row addressing of batch-major tensors.

#pragma once

#include <algorithm>
#include <cstring>
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

// ------------------------------------------------------------------ the recurrent weights, packed
// U is [u, G u] (G gates side by side, Keras' layout), packed once per call so that the per-step
// products read it contiguously, zero-padded past u in the last block of VL units.

// For h U (forward): [blocks][u][G][VL], the G gate columns of each block of VL units.
inline std::vector<float> forward_panels(const float* U, int u, int G) {
  const int blocks = (u + VL - 1) / VL;
  std::vector<float> panels(static_cast<size_t>(blocks) * u * G * VL, 0.0f);
  for (int jb = 0; jb < blocks; ++jb)
    for (int k = 0; k < u; ++k)
      for (int g = 0; g < G; ++g)
        for (int l = 0; l < VL && jb * VL + l < u; ++l)
          panels[((static_cast<size_t>(jb) * u + k) * G + g) * VL + l] = U[static_cast<size_t>(k) * G * u + g * u + jb * VL + l];
  return panels;
}

// For dz U^T (backward): [blocks][G u][VL], U^T's columns of each block of VL units.
inline std::vector<float> backward_panels(const float* U, int u, int G) {
  const int blocks = (u + VL - 1) / VL, width = G * u;
  std::vector<float> panels(static_cast<size_t>(blocks) * width * VL, 0.0f);
  for (int jb = 0; jb < blocks; ++jb)
    for (int k = 0; k < width; ++k)
      for (int l = 0; l < VL && jb * VL + l < u; ++l)
        panels[(static_cast<size_t>(jb) * width + k) * VL + l] = U[static_cast<size_t>(jb * VL + l) * width + k];
  return panels;
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
