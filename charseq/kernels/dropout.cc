// Dropout as one op on CPUs: y = x * keep / (1 - rate), each element's keep drawn from a counter-
// based generator keyed by a seed, so the same seed gives the same mask again and the gradient is
// the same op applied to dy.
//
// TensorFlow's stateless dropout draws a Philox uniform per element (float or bfloat16), compares
// and selects in separate ops: in a language model's training step its two masks took more time
// than the output layer. Here one pass reads x and writes y, and 16 random bits decide each
// element: SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
// 2014; Java's SplittableRandom) on the element's counter gives 64 bits, which decide 4 elements.
// An element is kept when its 16 bits are at least round(rate * 65536): a keep probability within
// 2^-17 of 1 - rate. The mask depends only on the seed and the element's index, not on the threads.

#include <cmath>

#include "common.h"
#include "tensorflow/core/util/work_sharder.h"

namespace charseq {
namespace {

constexpr uint64_t kGamma = 0x9e3779b97f4a7c15ull;  // SplitMix64's increment

inline uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The stream of one seed: its counters' 64 bits (SplitMix64's n-th output from state `key`).
struct Stream {
  uint64_t key;
  uint64_t bits(uint64_t counter) const { return mix(key + (counter + 1) * kGamma); }
};

// The element types as the loops see them: float, or bfloat16 as its bits (uint16_t), so that GCC
// vectorizes the conversions (a bfloat16 is a float's high half; rounded to the nearest, ties to
// even, as TensorFlow rounds).
template <class T>
struct Bits {
  using type = T;
};
template <>
struct Bits<Eigen::bfloat16> {
  using type = uint16_t;
};

inline float to_float(float x) { return x; }
inline float to_float(uint16_t x) {
  const uint32_t bits = static_cast<uint32_t>(x) << 16;
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}
inline void from_float(float x, float* out) { *out = x; }
inline void from_float(float x, uint16_t* out) { *out = to_bf16(x); }

// Elements [begin, end) of y = x * keep * scale; begin is a multiple of kGroup but for the last call.
constexpr int64_t kGroup = 32;  // elements per 8 counters: one vector of random bits on AVX-512

template <class T>
void drop(const Stream& s, uint16_t threshold, float scale, const T* x, T* y, int64_t begin, int64_t end) {
  int64_t i = begin;
  for (; i + kGroup <= end; i += kGroup) {
    uint64_t bits[kGroup / 4];
    for (int k = 0; k < kGroup / 4; ++k) bits[k] = s.bits(static_cast<uint64_t>(i) / 4 + k);
    uint16_t draws[kGroup];
    std::memcpy(draws, bits, sizeof draws);  // little-endian: element 4k + j takes bits 16j of counter k
    for (int j = 0; j < kGroup; ++j)
      from_float(draws[j] >= threshold ? to_float(x[i + j]) * scale : 0.0f, y + i + j);
  }
  for (; i < end; ++i) {
    const auto draw = static_cast<uint16_t>(s.bits(static_cast<uint64_t>(i) / 4) >> (16 * (i % 4)));
    from_float(draw >= threshold ? to_float(x[i]) * scale : 0.0f, y + i);
  }
}

template <class T>
class DropoutOp : public OpKernel {
 public:
  explicit DropoutOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    float rate;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rate", &rate));
    OP_REQUIRES(ctx, rate >= 0.0f && rate < 1.0f, tensorflow::errors::InvalidArgument("rate must be in [0, 1)"));
    threshold_ = static_cast<uint16_t>(std::min(65535L, std::lround(rate * 65536.0f)));
    scale_ = 1.0f / (1.0f - rate);
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& seed = ctx->input(1);
    OP_REQUIRES(ctx, seed.NumElements() == 2, tensorflow::errors::InvalidArgument("seed must have 2 elements"));
    Tensor* y;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    const auto s = seed.flat<int64_t>();
    const Stream stream{mix(static_cast<uint64_t>(s(0)) * kGamma + static_cast<uint64_t>(s(1)))};
    using B = typename Bits<T>::type;
    const auto* in = reinterpret_cast<const B*>(x.flat<T>().data());
    auto* out = reinterpret_cast<B*>(y->flat<T>().data());
    const int64_t n = x.NumElements(), groups = (n + kGroup - 1) / kGroup;
    const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    // A group's cost in Shard's units (about a cycle), by which it splits the groups over the
    // threads only where the work pays for the hand-off.
    tensorflow::Shard(workers->num_threads, workers->workers, groups, 2 * kGroup, [&](int64_t first, int64_t last) {
      drop(stream, threshold_, scale_, in, out, first * kGroup, std::min(n, last * kGroup));
    });
  }

 private:
  uint16_t threshold_ = 0;
  float scale_ = 1.0f;
};

REGISTER_OP("CharseqDropout")
    .Input("x: T")
    .Input("seed: int64")
    .Output("y: T")
    .Attr("T: {float, bfloat16}")
    .Attr("rate: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("CharseqDropout").Device(tensorflow::DEVICE_CPU).TypeConstraint<float>("T"),
                        DropoutOp<float>);
REGISTER_KERNEL_BUILDER(Name("CharseqDropout").Device(tensorflow::DEVICE_CPU).TypeConstraint<Eigen::bfloat16>("T"),
                        DropoutOp<Eigen::bfloat16>);

}  // namespace
}  // namespace charseq
