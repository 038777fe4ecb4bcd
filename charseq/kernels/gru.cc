// The GRU recurrence of a whole sequence as two TensorFlow ops, for CPUs: the twin of lstm.cc.
//
// The same plan as the LSTM's: the input projection (x W + b_input) and the weight gradients are
// large matrix products done by the caller (charseq/compiled_gru.py); the forward loop is one op
// and the backward loop another. Per step each thread owns a contiguous range of units, computes
// h_{t-1} U for the three gate columns of its units in registers, applies the gate arithmetic to
// the accumulators, and writes h_t for its units; one barrier per step, and every output element
// is computed by one thread in a fixed order (results do not depend on the thread count).
//
// Semantics are Keras' GRU (keras.layers.GRU, default activations, reset_after=True, the Keras 3
// and cuDNN-compatible variant): gate order z, r, h; with m = h_{t-1} U + b_recurrent,
//   z = sigmoid(x_z + m_z),  r = sigmoid(x_r + m_r),  hh = tanh(x_h + r * m_h),
//   h_t = z * h_{t-1} + (1 - z) * hh.
// With a mask, a masked step keeps the state and repeats the previous output (zeros before the
// first real step), as Keras' CPU loop does.

#include "common.h"

namespace charseq {
namespace {

#if defined(__AVX512F__)
constexpr int FMR = 8;  // batch rows per forward block (8 rows x 3 gates = 24 accumulators)
constexpr int BMR = 6;  // batch rows per backward block (x 2 unit blocks = 12 accumulators)
#else
constexpr int FMR = 4;
constexpr int BMR = 4;
#endif

// ------------------------------------------------------------------------------------ forward

struct Forward {
  int u;
  bool last;              // the last step: h also goes to h_last
  const Panels* panels;   // U's gate columns of each block of VL units, packed for the product
  Operand mat, mat_next;  // h_{t-1} as the product reads it, and where h_t goes for the next step
                          // (in float32 mat is h_prev's buffer and mat_next is unused)
  const float* bias;      // b_recurrent [3u]
  Rows xproj;             // [3u] per row
  Rows h_prev;            // state before this step, [u] per row (contiguous buffer)
  Rows out_prev;          // previous output, or ptr null (zeros) at the first step
  const float* mask;      // mask of this step (row b at mask[b * mask_stride]), or null
  size_t mask_stride;
  Rows gates, h, out;     // this step's [4u] (z, r, hh, m_h), [u], [u]; h is the next step's h_prev
  Rows h_last;
  Rows h_next;            // h again, in the contiguous [B][u] buffer that the next step reads
};

template <int MR>
void forward_block(const Forward& a, int r0, int block) {
  const int u = a.u, j0 = block * VL, n = std::min(VL, u - j0);
  vf acc[MR][3] = {};
  recurrent_forward<MR, 3>(*a.panels, u, a.mat, r0, block, acc);
  const vf bz = load_n(a.bias + j0, n), br = load_n(a.bias + u + j0, n), bh = load_n(a.bias + 2 * u + j0, n);
  const vf one = splat(1.0f);
  for (int r = 0; r < MR; ++r) {
    const int b = r0 + r;
    const float* xp = a.xproj.row(b) + j0;
    const vf z = vsigmoid(acc[r][0] + bz + load_n(xp, n));
    const vf rr = vsigmoid(acc[r][1] + br + load_n(xp + u, n));
    const vf mh = acc[r][2] + bh;
    const vf hh = vtanh(load_n(xp + 2 * u, n) + rr * mh);
    const vf h_prev = load_n(a.h_prev.row(b) + j0, n);
    vf h = z * h_prev + (one - z) * hh;
    vf out = h;
    if (a.mask && a.mask[b * a.mask_stride] == 0.0f) {
      h = h_prev;
      out = a.out_prev.ptr ? load_n(a.out_prev.row(b) + j0, n) : vf{};
    }
    float* gp = a.gates.row(b) + j0;
    store_n(gp, z, n);
    store_n(gp + u, rr, n);
    store_n(gp + 2 * u, hh, n);
    store_n(gp + 3 * u, mh, n);
    store_n(a.out.row(b) + j0, out, n);
    if (a.last) {
      store_n(a.h_last.row(b) + j0, h, n);
    } else {
      store_n(a.h.row(b) + j0, h, n);
      store_n(a.h_next.row(b) + j0, h, n);
      if (a.mat_next) a.mat_next.store(b, j0, h, n);
    }
  }
}

class GruForwardOp : public OpKernel {
 public:
  explicit GruForwardOp(OpKernelConstruction* ctx) : OpKernel(ctx) { read_recurrence(ctx, &mode_); }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& xproj = ctx->input(0);
    const Tensor& kernel = ctx->input(1);
    const Tensor& bias = ctx->input(2);
    const Tensor& h0 = ctx->input(3);
    const Tensor& mask = ctx->input(4);
    OP_REQUIRES(ctx, xproj.dims() == 3 && kernel.dims() == 2,
                tensorflow::errors::InvalidArgument("xproj must be [B, T, 3u], recurrent_kernel [u, 3u]"));
    const int B = xproj.dim_size(0), T = xproj.dim_size(1), u = kernel.dim_size(0);
    OP_REQUIRES(ctx, kernel.dim_size(1) == 3 * u && xproj.dim_size(2) == 3 * u,
                tensorflow::errors::InvalidArgument("recurrent_kernel must be [u, 3u] and xproj [B, T, 3u]"));
    OP_REQUIRES(ctx, bias.shape() == TensorShape({3 * u}),
                tensorflow::errors::InvalidArgument("recurrent_bias must be [3u]"));
    OP_REQUIRES(ctx, h0.shape() == TensorShape({B, u}), tensorflow::errors::InvalidArgument("h0 must be [B, u]"));
    OP_REQUIRES(ctx, T > 0, tensorflow::errors::InvalidArgument("the sequence must have at least one step"));
    const bool masked = mask.NumElements() > 0;
    OP_REQUIRES(ctx, !masked || mask.shape() == TensorShape({B, T}),
                tensorflow::errors::InvalidArgument("mask must be [B, T] or empty"));
    Tensor *out, *h_prev, *gates, *h_last;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B, T, u}), &out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, T, u}), &h_prev));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({B, T, 4 * u}), &gates));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({B, u}), &h_last));
    if (B == 0 || u == 0) return;

    const int blocks = (u + VL - 1) / VL;
    const Panels panels = pack_forward(kernel.flat<float>().data(), u, 3, mode_);

    const size_t seq = static_cast<size_t>(T) * u, seq3 = seq * 3, seq4 = seq * 4;
    float* out_p = out->flat<float>().data();
    float* hp_p = h_prev->flat<float>().data();
    float* g_p = gates->flat<float>().data();
    float* x_p = const_cast<float*>(xproj.flat<float>().data());
    const float* h0_p = h0.flat<float>().data();
    for (int b = 0; b < B; ++b) std::memcpy(hp_p + b * seq, h0_p + b * u, sizeof(float) * u);
    // h_{t-1} is read from a contiguous buffer, as in lstm.cc: two buffers, alternate steps.
    std::vector<float> h_buf(2 * static_cast<size_t>(B) * u);
    std::memcpy(h_buf.data(), h0_p, sizeof(float) * B * u);
    const size_t su = static_cast<size_t>(u);
    // In bfloat16 the product reads its own copy of h_{t-1}, rounded; the gate arithmetic reads h_buf.
    const bool rounded = mode_ != Recurrence::kFloat32;
    const OperandBuffers mats(mode_, rounded ? B : 0, u);
    if (rounded) mats.fill(0, h0_p, su, u);
    const float* m_p = masked ? mask.flat<float>().data() : nullptr;
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    const int shards = num_shards(ctx, blocks);
    for (int t = 0; t < T; ++t) {
      const bool last = t == T - 1;
      Forward a{u, last, &panels,
                rounded ? mats.at(t) : Operand{h_buf.data() + (t & 1) * B * su, nullptr, su},
                rounded && !last ? mats.at(t + 1) : Operand{},
                bias.flat<float>().data(), {x_p + t * 3 * u, seq3},
                {h_buf.data() + (t & 1) * B * su, su},
                {t ? out_p + (t - 1) * u : nullptr, seq},
                m_p ? m_p + t : nullptr, static_cast<size_t>(T),
                {g_p + t * 4 * u, seq4}, {last ? nullptr : hp_p + (t + 1) * u, seq}, {out_p + t * u, seq},
                {h_last->flat<float>().data(), su},
                {h_buf.data() + ((t + 1) & 1) * B * su, su}};
      run_shards(pool, shards, [&](int s) {
        int begin, end;
        shard_range(blocks, shards, s, &begin, &end);
        for (int jb = begin; jb < end; ++jb)
          for_row_groups<FMR>(B, [&](auto rows, int r0) { forward_block<decltype(rows)::value>(a, r0, jb); });
      });
    }
  }

 private:
  Recurrence mode_ = Recurrence::kFloat32;
};

// ----------------------------------------------------------------------------------- backward
//
// Walking back from the last step, with dh the gradient reaching h_t (from the output of step t
// and from step t+1):
//   d(hh) = dh (1 - z),  da_h = d(hh) (1 - hh^2),  da_z = dh (h_{t-1} - hh) z (1 - z),
//   da_r = da_h m_h r (1 - r);
// the gradient of the input projection is (da_z, da_r, da_h), that of m (the recurrent product
// plus its bias) is (da_z, da_r, da_h r), and the gradient reaching h_{t-1} is dh z + dm U^T.
// The op returns both per-step gradients; the caller turns them into the weight gradients.

struct Backward {
  int u, t;                 // the step whose gradients this phase computes (-1: only d_h0)
  const Panels* panels;     // U^T's columns of each block of VL units, packed for the product
  Operand dm_next;          // d(m) of step t+1 ([3u] per row, zeros where masked) as the product reads
                            // it; none at the last step
  const float* mask;        // mask of step t, or null
  size_t mask_stride;
  Rows gates;               // z, r, hh, m_h of step t
  Rows h_prev;              // state before step t
  Rows d_out;               // gradient of step t's output
  float *dh, *carry;        // [B][u]: the part of h_t's gradient that is not dm_next U^T; carry: of
                            // the repeated output (masked only)
  Rows dx, dm;              // d(input projection) and d(m) of step t (outputs)
  Operand dm_copy;          // d(m) again, as the next phase's product reads it
};

inline void backward_epilogue(const Backward& a, int b, int j0, int n, const vf* acc) {
  const int u = a.u;
  const size_t s = static_cast<size_t>(b) * u + j0;
  vf dh = load_n(a.dh + s, n);
  if (acc) dh += *acc;  // dm_next is zero for a masked step t+1, whose state passed h_t through
  if (a.t < 0) {
    store_n(a.dh + s, dh, n);  // d_h0
    return;
  }
  vf d_out = load_n(a.d_out.row(b) + j0, n);
  if (a.mask) d_out += load_n(a.carry + s, n);
  float* dx = a.dx.row(b) + j0;
  float* dm = a.dm.row(b) + j0;
  if (!(a.mask && a.mask[b * a.mask_stride] == 0.0f)) {
    dh += d_out;
    const float* gp = a.gates.row(b) + j0;
    const vf z = load_n(gp, n), r = load_n(gp + u, n), hh = load_n(gp + 2 * u, n), mh = load_n(gp + 3 * u, n);
    const vf one = splat(1.0f);
    const vf da_h = dh * (one - z) * (one - hh * hh);
    const vf da_z = dh * (load_n(a.h_prev.row(b) + j0, n) - hh) * z * (one - z);
    const vf da_r = da_h * mh * r * (one - r);
    const vf dm_h = da_h * r;
    store_n(dx, da_z, n);
    store_n(dx + u, da_r, n);
    store_n(dx + 2 * u, da_h, n);
    store_n(dm, da_z, n);
    store_n(dm + u, da_r, n);
    store_n(dm + 2 * u, dm_h, n);
    a.dm_copy.store(b, j0, da_z, n);
    a.dm_copy.store(b, j0 + u, da_r, n);
    a.dm_copy.store(b, j0 + 2 * u, dm_h, n);
    dh *= z;
    if (a.mask) store_n(a.carry + s, vf{}, n);
  } else {
    for (int g = 0; g < 3; ++g) {
      store_n(dx + g * u, vf{}, n);
      store_n(dm + g * u, vf{}, n);
      a.dm_copy.store(b, j0 + g * u, vf{}, n);
    }
    store_n(a.carry + s, d_out, n);
  }
  store_n(a.dh + s, dh, n);
}

// Rows [r0, r0 + MR) of NB consecutive unit blocks from `block`: dm_next U^T, then the epilogue.
template <int MR, int NB>
void backward_block(const Backward& a, int r0, int block) {
  vf acc[MR][NB] = {};
  if (a.dm_next) recurrent_backward<MR, NB>(*a.panels, 3 * a.u, a.dm_next, r0, block, acc);
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < NB; ++q) {
      const int j0 = (block + q) * VL;
      backward_epilogue(a, r0 + r, j0, std::min(VL, a.u - j0), a.dm_next ? &acc[r][q] : nullptr);
    }
}

class GruBackwardOp : public OpKernel {
 public:
  explicit GruBackwardOp(OpKernelConstruction* ctx) : OpKernel(ctx) { read_recurrence(ctx, &mode_); }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& kernel = ctx->input(0);
    const Tensor& mask = ctx->input(1);
    const Tensor& h_prev = ctx->input(2);
    const Tensor& gates = ctx->input(3);
    const Tensor& d_out = ctx->input(4);
    const Tensor& d_h_last = ctx->input(5);
    OP_REQUIRES(ctx, gates.dims() == 3 && kernel.dims() == 2,
                tensorflow::errors::InvalidArgument("gates must be [B, T, 4u], recurrent_kernel [u, 3u]"));
    const int B = gates.dim_size(0), T = gates.dim_size(1), u = kernel.dim_size(0);
    const TensorShape seq_shape({B, T, u}), state({B, u});
    OP_REQUIRES(ctx, kernel.dim_size(1) == 3 * u && gates.dim_size(2) == 4 * u && h_prev.shape() == seq_shape &&
                     d_out.shape() == seq_shape && d_h_last.shape() == state,
                tensorflow::errors::InvalidArgument("inconsistent shapes"));
    const bool masked = mask.NumElements() > 0;
    OP_REQUIRES(ctx, !masked || mask.shape() == TensorShape({B, T}),
                tensorflow::errors::InvalidArgument("mask must be [B, T] or empty"));
    Tensor *dx, *dm, *d_h0;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B, T, 3 * u}), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, T, 3 * u}), &dm));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, state, &d_h0));
    if (B == 0 || u == 0) return;
    float* dh = d_h0->flat<float>().data();
    std::memcpy(dh, d_h_last.flat<float>().data(), sizeof(float) * B * u);
    if (T == 0) return;

    const int blocks = (u + VL - 1) / VL;
    const int n3 = 3 * u;
    const Panels panels = pack_backward(kernel.flat<float>().data(), u, 3, mode_);
    std::vector<float> carry(masked ? static_cast<size_t>(B) * u : 0, 0.0f);
    const OperandBuffers dm_buf(mode_, B, n3);  // alternate steps, as h_buf in the forward op

    const size_t seq = static_cast<size_t>(T) * u, seq3 = seq * 3, seq4 = seq * 4;
    const float* m_p = masked ? mask.flat<float>().data() : nullptr;
    float* hp_p = const_cast<float*>(h_prev.flat<float>().data());
    float* g_p = const_cast<float*>(gates.flat<float>().data());
    float* d_p = const_cast<float*>(d_out.flat<float>().data());
    float* dx_p = dx->flat<float>().data();
    float* dm_p = dm->flat<float>().data();
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    const int shards = num_shards(ctx, blocks);
    for (int t = T - 1; t >= -1; --t) {
      const bool has_next = t + 1 < T;
      const bool here = t >= 0;
      Backward a{u, t, &panels, has_next ? dm_buf.at(t + 1) : Operand{},
                 here && m_p ? m_p + t : nullptr, static_cast<size_t>(T),
                 {here ? g_p + t * 4 * u : nullptr, seq4},
                 {here ? hp_p + t * u : nullptr, seq},
                 {here ? d_p + t * u : nullptr, seq},
                 dh, carry.data(),
                 {here ? dx_p + t * n3 : nullptr, seq3},
                 {here ? dm_p + t * n3 : nullptr, seq3},
                 here ? dm_buf.at(t) : Operand{}};
      run_shards(pool, shards, [&](int s) {
        int begin, end;
        shard_range(blocks, shards, s, &begin, &end);
        int jb = begin;
        for (; jb + 2 <= end; jb += 2)
          for_row_groups<BMR>(B, [&](auto rows, int r0) { backward_block<decltype(rows)::value, 2>(a, r0, jb); });
        if (jb < end)
          for_row_groups<BMR>(B, [&](auto rows, int r0) { backward_block<decltype(rows)::value, 1>(a, r0, jb); });
      });
    }
  }

 private:
  Recurrence mode_ = Recurrence::kFloat32;
};

}  // namespace

REGISTER_OP("CharseqGruForward")
    .Input("xproj: float")
    .Input("recurrent_kernel: float")
    .Input("recurrent_bias: float")
    .Input("h0: float")
    .Input("mask: float")
    .Output("outputs: float")
    .Output("h_prev: float")
    .Output("gates: float")
    .Output("h_last: float")
    .Attr(CHARSEQ_RECURRENCE_ATTR)
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      auto x = c->input(0), k = c->input(1);
      TF_RETURN_IF_ERROR(c->WithRank(x, 3, &x));
      TF_RETURN_IF_ERROR(c->WithRank(k, 2, &k));
      auto seq = c->MakeShape({c->Dim(x, 0), c->Dim(x, 1), c->Dim(k, 0)});
      tensorflow::shape_inference::DimensionHandle four_u;
      TF_RETURN_IF_ERROR(c->Multiply(c->Dim(k, 0), 4, &four_u));
      c->set_output(0, seq);
      c->set_output(1, seq);
      c->set_output(2, c->MakeShape({c->Dim(x, 0), c->Dim(x, 1), four_u}));
      c->set_output(3, c->input(3));
      return tensorflow::OkStatus();
    });

REGISTER_OP("CharseqGruBackward")
    .Input("recurrent_kernel: float")
    .Input("mask: float")
    .Input("h_prev: float")
    .Input("gates: float")
    .Input("d_outputs: float")
    .Input("d_h_last: float")
    .Output("d_xproj: float")
    .Output("d_m: float")
    .Output("d_h0: float")
    .Attr(CHARSEQ_RECURRENCE_ATTR)
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      auto h = c->input(2), k = c->input(0);
      TF_RETURN_IF_ERROR(c->WithRank(h, 3, &h));
      TF_RETURN_IF_ERROR(c->WithRank(k, 2, &k));
      auto seq3 = c->MakeShape({c->Dim(h, 0), c->Dim(h, 1), c->Dim(k, 1)});
      c->set_output(0, seq3);
      c->set_output(1, seq3);
      c->set_output(2, c->input(5));
      return tensorflow::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("CharseqGruForward").Device(tensorflow::DEVICE_CPU), GruForwardOp);
REGISTER_KERNEL_BUILDER(Name("CharseqGruBackward").Device(tensorflow::DEVICE_CPU), GruBackwardOp);

}  // namespace charseq
