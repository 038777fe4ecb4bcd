// One step of an LSTM or GRU layer, for generation: its weights packed once, then one op per step.
//
// Generation advances the recurrence one token at a time. The forward ops of lstm.cc and gru.cc,
// called on a length-1 sequence, would pack U into their panels at every step; here
// CharseqPackWeights packs a weight matrix ([depth, G u]: U, or W for a layer that reads the layer
// below) once per generation into a tensor in the forward panels' layout (common.h), and
// CharseqLstmStep / CharseqGruStep compute one step from them with the same register-blocked
// products: x W + h U in registers, then the cell's gate arithmetic on them. CharseqDense is the
// sampler's output layer on the same products (its kernel packed once too).
//
// Precision: float32 panels (T = float) multiply in float32; with `recurrence` bfloat16 they hold
// values rounded to bfloat16 and the operands are rounded too (the portable emulation, any CPU);
// bfloat16 panels (T = bfloat16) run on AMX tiles where the CPU has them (packed for them: depth
// padded to 32; "bfloat16_avx512" keeps the dot products) and AVX512-BF16 dot products elsewhere,
// with float32 sums, and the ops refuse them where the CPU has no AVX512-BF16 (the caller packs
// float32 there).

#include <memory>

#include "sequence.h"

namespace charseq {
namespace {

using tensorflow::DataType;
using tensorflow::shape_inference::InferenceContext;

// The product mode of an op from its packed type and `recurrence`; false (error set) where
// bfloat16 panels are asked for on a CPU without AVX512-BF16.
bool read_mode(OpKernelConstruction* ctx, Recurrence* mode) {
  DataType type;
  std::string recurrence;
  if (!ctx->GetAttr("T", &type).ok() || !ctx->GetAttr("recurrence", &recurrence).ok()) {
    ctx->CtxFailure(tensorflow::errors::InvalidArgument("the op needs its T and recurrence attributes"));
    return false;
  }
  if (type == tensorflow::DT_BFLOAT16) {
    *mode = recurrence == "bfloat16" && native_tiles() ? Recurrence::kTiles : Recurrence::kBfloat16;
    if (!native_bf16()) {
      ctx->CtxFailure(tensorflow::errors::InvalidArgument("bfloat16 panels need a CPU with AVX512-BF16"));
      return false;
    }
  } else {
    *mode = recurrence == "float32" ? Recurrence::kFloat32 : Recurrence::kEmulated;
  }
  return true;
}

// Elements of one block of VL (BF) units in the panels of a [depth, G u] matrix.
size_t block_size(Recurrence mode, int depth, int G) {
#if defined(__AVX512F__)
  if (bf16_operand(mode)) return padded(depth, depth_multiple(mode)) * G * BF;
#endif
  return static_cast<size_t>(depth) * G * VL;
}

int unit_blocks(int u) { return (u + VL - 1) / VL; }

#if defined(CHARSEQ_AMX)
constexpr int kMinTileRows = 4;  // fewer rows of a step multiply on the dot products (Factor::product)
#endif

// ---------------------------------------------------------------------------------- packing

class PackOp : public OpKernel {
 public:
  explicit PackOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    if (read_mode(ctx, &mode_)) OP_REQUIRES_OK(ctx, ctx->GetAttr("gates", &G_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& weights = ctx->input(0);
    if (!check(ctx, weights.dims() == 2 && G_ > 0 && weights.dim_size(1) % G_ == 0,
               "weights must be [depth, ", G_, "u]"))
      return;
    const int depth = weights.dim_size(0), u = weights.dim_size(1) / G_, G = G_;
    const float* M = data(weights);
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({static_cast<int64_t>(
                                                    unit_blocks(u) * block_size(mode_, depth, G))}),
                                             &out));
#if defined(__AVX512F__)
    if (bf16_operand(mode_)) {
      const auto panels = pack_panels<BF, 2, uint16_t>(M, depth, u, G, Pass::kForward, [](float v) { return to_bf16(v); },
                                                       depth_multiple(mode_));
      std::memcpy(out->flat<tensorflow::bfloat16>().data(), panels.data(), panels.size() * sizeof(uint16_t));
      return;
    }
#endif
    const bool round = mode_ == Recurrence::kEmulated;
    const auto panels = pack_panels<VL, 1, float>(M, depth, u, G, Pass::kForward,
                                                  [=](float v) { return round ? round_bf16(v) : v; });
    std::memcpy(out->flat<float>().data(), panels.data(), panels.size() * sizeof(float));
  }

 private:
  Recurrence mode_ = Recurrence::kFloat32;
  int G_ = 0;
};

// ------------------------------------------------------------------------------------- a step

// Packed panels of one [depth, G u] matrix, and the rows (x or h) they multiply, as the product
// reads them: float32 rows in place, or a rounded (emulated) or bfloat16 (native) copy.
class Factor {
 public:
  Factor(Recurrence mode, const Tensor& packed, const float* rows, int B, int depth, int G)
      : depth_(depth), block_(block_size(mode, depth, G)), tiles_(mode == Recurrence::kTiles) {
    if (bf16_operand(mode)) {
      h_ = reinterpret_cast<const uint16_t*>(packed.flat<tensorflow::bfloat16>().data());
    } else {
      f_ = packed.flat<float>().data();
    }
    if (mode == Recurrence::kFloat32 || depth == 0) {
      x_ = Operand{const_cast<float*>(rows), nullptr, static_cast<size_t>(depth)};
    } else {
      copy_ = std::make_unique<OperandBuffers>(mode, B, depth);
      copy_->fill(0, rows, depth, depth);
      x_ = copy_->at(0);
    }
  }

  // acc[r][g] += row r0 + r times gate g's columns of unit block jb.
  template <int MR, int G>
  void product(int r0, int jb, vf (&acc)[MR][G]) const {
    if (depth_ == 0) return;
#if defined(CHARSEQ_AMX)
    // A tile takes 16 rows in one instruction; for a row or two the dot products are faster, and
    // they read the same panels (they stop at the depth, before the tiles' zero padding).
    if constexpr (MR >= kMinTileRows && MR <= kTileRows) {
      if (tiles_) return tile_product<Pass::kForward, MR, G>(h_ + jb * block_, block_, depth_, x_, r0, acc);
    }
#endif
#if defined(__AVX512F__)
    if (h_) return bf16_product<Pass::kForward, MR, G>(h_ + jb * block_, block_, depth_, x_, r0, acc);
#endif
    float_product<Pass::kForward, MR, G>(f_ + jb * block_, block_, depth_, x_, r0, acc);
  }

 private:
  int depth_;
  size_t block_;
  bool tiles_;
  const float* f_ = nullptr;
  const uint16_t* h_ = nullptr;
  Operand x_;
  std::unique_ptr<OperandBuffers> copy_;
};

// What a step op reads: x [B, n] and its packed W ([n, G u]; n may be 0), xproj ([B, G u], or
// [G u] for every row: x W + b computed by the caller, or just b), h [B, u] and its packed U.
struct StepInputs {
  int B = 0, n = 0, u = 0;
  const float* xproj = nullptr;
  size_t xproj_stride = 0;  // 0: one row for the whole batch
  const float* h = nullptr;

  bool read(OpKernelContext* ctx, Recurrence mode, int G, const Tensor& x, const Tensor& kernel, const Tensor& xp,
            const Tensor& recurrent, const Tensor& h_in) {
    if (!check(ctx, x.dims() == 2 && h_in.dims() == 2 && (x.dim_size(0) == h_in.dim_size(0) || x.dim_size(1) == 0),
               "x must be [B, n] (or [., 0]: no input product) and h [B, u]"))
      return false;
    B = h_in.dim_size(0), n = x.dim_size(1), u = h_in.dim_size(1);
    const TensorShape row({G * u}), rows({B, G * u});
    if (!check(ctx, xp.shape() == row || xp.shape() == rows, "xproj must be [B, ", G, "u] or [", G, "u]") ||
        !check(ctx, kernel.NumElements() == static_cast<int64_t>(unit_blocks(u) * block_size(mode, n, G)),
               "the packed kernel does not fit x [B, ", n, "] and ", u, " units: pack it with the same recurrence") ||
        !check(ctx, recurrent.NumElements() == static_cast<int64_t>(unit_blocks(u) * block_size(mode, u, G)),
               "the packed recurrent kernel does not fit ", u, " units: pack it with the same recurrence"))
      return false;
    xproj = data(xp), xproj_stride = xp.dims() == 2 ? G * u : 0, h = data(h_in);
    return true;
  }
};

// The cells' epilogues below get, per row and unit block, the gate pre-activations' parts: m[g]
// from the products, xp (this row of xproj, gate g at xp + g u) and the row's h_{t-1} at hp.

// Keras' LSTM: gates i, f, g, o; c_t = f c + i g, h_t = o tanh(c_t). One accumulator per gate.
struct LstmCell {
  static constexpr int G = 4, kSums = 1, kState = 4;  // inputs ..., h (4), c (5); outputs h, c
  float *h_out, *c_out;
  const float* c;

  static bool open(OpKernelContext* ctx, const StepInputs&, LstmCell* cell) {
    const Tensor &h = ctx->input(4), &c = ctx->input(5);
    Tensor *h_out, *c_out;
    if (!check(ctx, c.shape() == h.shape(), "c must be [B, u], as h") ||
        !allocate_outputs(ctx, {{h.shape(), &h_out}, {c.shape(), &c_out}}))
      return false;
    *cell = {data(*h_out), data(*c_out), data(c)};
    return true;
  }

  template <int MR>
  void block(const StepInputs& s, const Factor& W, const Factor& U, int r0, int jb) const {
    const int u = s.u, j0 = jb * VL, n = std::min(VL, u - j0);
    vf m[MR][G] = {};
    W.product<MR, G>(r0, jb, m);
    U.product<MR, G>(r0, jb, m);
    for (int r = 0; r < MR; ++r) {
      const size_t b = r0 + r, at = b * u + j0;
      const float* xp = s.xproj + b * s.xproj_stride + j0;
      const vf i = vsigmoid(m[r][0] + load_n(xp, n)), f = vsigmoid(m[r][1] + load_n(xp + u, n));
      const vf c_t = f * load_n(c + at, n) + i * vtanh(m[r][2] + load_n(xp + 2 * u, n));
      store_n(c_out + at, c_t, n);
      store_n(h_out + at, vsigmoid(m[r][3] + load_n(xp + 3 * u, n)) * vtanh(c_t), n);
    }
  }
};

// Keras' GRU (reset_after): gates z, r, h; the input's and the state's products stay apart, since
// r scales only the state's part of the candidate: hh = tanh(x_h + r (h U_h + b_h)).
struct GruCell {
  static constexpr int G = 3, kSums = 2, kState = 5;  // inputs ..., recurrent_bias (4), h (5); output h
  float* h_out;
  const float* bias;  // recurrent bias [3u]

  static bool open(OpKernelContext* ctx, const StepInputs& s, GruCell* cell) {
    const Tensor &bias = ctx->input(4), &h = ctx->input(5);
    Tensor* h_out;
    if (!check(ctx, bias.shape() == TensorShape({3 * s.u}), "recurrent_bias must be [3u]") ||
        !allocate_outputs(ctx, {{h.shape(), &h_out}}))
      return false;
    *cell = {data(*h_out), data(bias)};
    return true;
  }

  template <int MR>
  void block(const StepInputs& s, const Factor& W, const Factor& U, int r0, int jb) const {
    const int u = s.u, j0 = jb * VL, n = std::min(VL, u - j0);
    vf mx[MR][G] = {}, mh[MR][G] = {};
    W.product<MR, G>(r0, jb, mx);
    U.product<MR, G>(r0, jb, mh);
    vf b[G];
    for (int g = 0; g < G; ++g) b[g] = load_n(bias + g * u + j0, n);
    for (int r = 0; r < MR; ++r) {
      const size_t row = r0 + r, at = row * u + j0;
      const float* xp = s.xproj + row * s.xproj_stride + j0;
      const vf z = vsigmoid(load_n(xp, n) + mx[r][0] + mh[r][0] + b[0]);
      const vf reset = vsigmoid(load_n(xp + u, n) + mx[r][1] + mh[r][1] + b[1]);
      const vf hh = vtanh(load_n(xp + 2 * u, n) + mx[r][2] + reset * (mh[r][2] + b[2]));
      store_n(h_out + at, z * load_n(s.h + at, n) + (splat(1.0f) - z) * hh, n);
    }
  }
};

// A step is split over the op's threads (common.h's Shards: the same sums in the same order, so the
// same result) where its products have at least kShardFlops, or its packed weights at least
// kShardBytes. A step of a row or a few is bound by reading the weights, not by multiplying them,
// and a model of layers that size holds more than one core's L2 cache: split, each core reads its
// own share, which its cache keeps from step to step (the default 3x256 GRU at batch 1 in float32:
// 181 against 97 us a character). Below both, the hand-off to the second thread costs more than it
// saves (64 units at batch 1: 24 against 27 us).
constexpr double kShardFlops = 4e6;
constexpr int64_t kShardBytes = 512 << 10;

// One step of `cell` over the batch, unit block by unit block, rows in register groups: on the
// calling thread for a small step (a small batch of small layers), else on the op's threads.
template <class Cell>
void run_step(OpKernelContext* ctx, Recurrence mode, const StepInputs& s, const Tensor& x, const Tensor& kernel,
              const Tensor& recurrent, const Cell& cell) {
  constexpr int G = Cell::G;
  if (s.B == 0 || s.u == 0) return;
  const Factor W(mode, kernel, data(x), s.B, s.n, G), U(mode, recurrent, s.h, s.B, s.u, G);
  const int64_t weight_bytes = kernel.TotalBytes() + recurrent.TotalBytes();
  if (2.0 * s.B * (s.n + s.u) * G * s.u >= kShardFlops || weight_bytes >= kShardBytes) {
    const Shards shards(ctx, unit_blocks(s.u));
    const auto block = [&](auto rows, auto, int r0, int jb) { cell.template block<decltype(rows)::value>(s, W, U, r0, jb); };
#if defined(CHARSEQ_AMX)
    if (mode == Recurrence::kTiles) return shards.run<kTileRows, 1>(s.B, block);
#endif
    shards.run<kForwardAccumulators / (G * Cell::kSums), 1>(s.B, block);
    return;
  }
  for (int jb = 0; jb < unit_blocks(s.u); ++jb)
    for_row_groups<kForwardAccumulators / (G * Cell::kSums)>(s.B, [&](auto rows, int r0) {
      cell.template block<decltype(rows)::value>(s, W, U, r0, jb);
    });
}

class StepOp : public OpKernel {
 public:
  explicit StepOp(OpKernelConstruction* ctx) : OpKernel(ctx) { read_mode(ctx, &mode_); }
  // Run where the executor reaches it, as a cheap op, rather than through another thread's queue.
  bool IsExpensive() override { return false; }

 protected:
  Recurrence mode_ = Recurrence::kFloat32;
};

// One step of `Cell`: the inputs every cell shares (x, kernel, xproj, recurrent_kernel), its state
// h at input Cell::kState, and what the cell reads and writes itself (Cell::open).
template <class Cell>
class CellStepOp : public StepOp {
 public:
  using StepOp::StepOp;
  void Compute(OpKernelContext* ctx) override {
    const auto [x, kernel, xproj, recurrent] = inputs<4>(ctx);
    StepInputs s;
    Cell cell;
    if (!s.read(ctx, mode_, Cell::G, x, kernel, xproj, recurrent, ctx->input(Cell::kState)) ||
        !Cell::open(ctx, s, &cell))
      return;
    run_step(ctx, mode_, s, x, kernel, recurrent, cell);
  }
};

// Batch rows per register group of the output layer (one vocabulary block of sums per row). Not
// kForwardAccumulators (24 with AVX-512): with 24 rows the compiler keeps neither the sums (a loop of
// 24 is not unrolled) nor the rows' 24 pointers in registers, and a batch of 32 splits into groups
// of 24, 6, 1 and 1, the last two one dependent chain of FMAs each. With 8, a batch of 32 is four
// groups and the op twice as fast.
constexpr int kDenseRows = 8;

// The output layer of a step, x K + b over the vocabulary: K packed once (one gate, float32), in
// place of a MatMul, a BiasAdd and the sampler's Add of the banned symbols' -inf (folded into b).
class DenseOp : public OpKernel {
 public:
  explicit DenseOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  bool IsExpensive() override { return false; }

  void Compute(OpKernelContext* ctx) override {
    const auto [x, kernel, bias] = inputs<3>(ctx);
    if (!check(ctx, x.dims() == 2 && bias.dims() == 1, "x must be [B, n] and bias [V]")) return;
    const int B = x.dim_size(0), n = x.dim_size(1), V = bias.dim_size(0);
    if (!check(ctx, kernel.NumElements() == static_cast<int64_t>(unit_blocks(V) * block_size(Recurrence::kFloat32, n, 1)),
               "the packed kernel does not fit x [B, ", n, "] and ", V, " outputs: pack it with gates=1 in float32"))
      return;
    Tensor* out;
    if (!allocate_outputs(ctx, {{TensorShape({B, V}), &out}}) || B == 0 || V == 0) return;
    const Factor K(Recurrence::kFloat32, kernel, data(x), B, n, 1);
    float* y = data(*out);
    const float* b = data(bias);
    for (int jb = 0; jb < unit_blocks(V); ++jb) {
      const int j0 = jb * VL, m = std::min(VL, V - j0);
      const vf bj = load_n(b + j0, m);
      for_row_groups<kDenseRows>(B, [&](auto rows, int r0) {
        constexpr int MR = decltype(rows)::value;
        vf acc[MR][1] = {};
        K.product<MR, 1>(r0, jb, acc);
        for (int r = 0; r < MR; ++r) store_n(y + static_cast<size_t>(r0 + r) * V + j0, acc[r][0] + bj, m);
      });
    }
  }
};

#define CHARSEQ_PACKED_ATTRS "T: {float, bfloat16} = DT_FLOAT"

// Outputs shaped as inputs `first`, `first` + 1, ...
template <int first, int count>
absl::Status same_as_inputs(InferenceContext* c) {
  for (int i = 0; i < count; ++i) c->set_output(i, c->input(first + i));
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("CharseqPackWeights")
    .Input("weights: float")
    .Output("packed: T")
    .Attr("gates: int")
    .Attr(CHARSEQ_PACKED_ATTRS)
    .Attr(CHARSEQ_RECURRENCE_ATTR)
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(c->UnknownDim()));
      return absl::OkStatus();
    });

REGISTER_OP("CharseqLstmStep")
    .Input("x: float")
    .Input("kernel: T")
    .Input("xproj: float")
    .Input("recurrent_kernel: T")
    .Input("h: float")
    .Input("c: float")
    .Output("h_next: float")
    .Output("c_next: float")
    .Attr(CHARSEQ_PACKED_ATTRS)
    .Attr(CHARSEQ_RECURRENCE_ATTR)
    .SetShapeFn(same_as_inputs<4, 2>);

REGISTER_OP("CharseqGruStep")
    .Input("x: float")
    .Input("kernel: T")
    .Input("xproj: float")
    .Input("recurrent_kernel: T")
    .Input("recurrent_bias: float")
    .Input("h: float")
    .Output("h_next: float")
    .Attr(CHARSEQ_PACKED_ATTRS)
    .Attr(CHARSEQ_RECURRENCE_ATTR)
    .SetShapeFn(same_as_inputs<5, 1>);

REGISTER_OP("CharseqDense")
    .Input("x: float")
    .Input("kernel: float")
    .Input("bias: float")
    .Output("y: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Matrix(c->Dim(c->input(0), 0), c->Dim(c->input(2), 0)));
      return absl::OkStatus();
    });
REGISTER_KERNEL_BUILDER(Name("CharseqDense").Device(tensorflow::DEVICE_CPU), DenseOp);

#define CHARSEQ_STEP_KERNELS(type)                                                                          \
  REGISTER_KERNEL_BUILDER(Name("CharseqPackWeights").Device(tensorflow::DEVICE_CPU).TypeConstraint<type>("T"), \
                          PackOp);                                                                          \
  REGISTER_KERNEL_BUILDER(Name("CharseqLstmStep").Device(tensorflow::DEVICE_CPU).TypeConstraint<type>("T"),    \
                          CellStepOp<LstmCell>);                                                                      \
  REGISTER_KERNEL_BUILDER(Name("CharseqGruStep").Device(tensorflow::DEVICE_CPU).TypeConstraint<type>("T"),     \
                          CellStepOp<GruCell>);
CHARSEQ_STEP_KERNELS(float)
CHARSEQ_STEP_KERNELS(tensorflow::bfloat16)

}  // namespace charseq
