// The LSTM recurrence of a whole sequence as two TensorFlow ops, for CPUs.
//
// Keras runs an LSTM on a CPU as a while_loop of a dozen small ops per step, and each op's
// dispatch costs about as much as its arithmetic. Here the whole forward loop is one op and the
// whole backward loop another; the input projection (x W + b) and the weight gradients are large
// matrix products done outside, by the caller (charseq/compiled_lstm.py).
//
// Per step, each thread owns a contiguous range of units: it computes the recurrent product
// h_{t-1} U for the four gate columns of its units (a register-blocked kernel over U packed once
// per call), applies the gate arithmetic to the accumulators while they are still in registers,
// and writes h_t, c_t for its units. One barrier per step. Each output element is computed by one
// thread in a fixed order, so results do not depend on the thread count or scheduling.
//
// Layout and semantics are Keras' (keras.layers.LSTM, default activations): gate order i, f, c, o;
// batch-major tensors [B, T, ...] as Keras' (no transposes around the op); with a mask, a masked step keeps the state and repeats the
// previous output (zeros before the first real step), as Keras' CPU loop does.
//
// Built with -O3 -march=native (the build cache is keyed by the CPU's flags); the vectors are GCC
// vector extensions, so the same source compiles for AVX-512, AVX2 or plain SSE/NEON.

#include "common.h"

namespace charseq {
namespace {

#if defined(__AVX512F__)
constexpr int FMR = 6;  // batch rows per forward block (6 rows x 4 gates = 24 accumulators)
constexpr int BMR = 6;  // batch rows per backward block (x 2 unit blocks = 12 accumulators)
#else
constexpr int FMR = 3;
constexpr int BMR = 4;
#endif

// ------------------------------------------------------------------------------------ forward

struct Forward {
  int u;
  bool last;              // the last step: h and c also go to h_last, c_last
  const Panels* panels;   // U's gate columns of each block of VL units, packed for the product
  Operand mat, mat_next;  // h_{t-1} as the product reads it, and where h_t goes for the next step
                          // (in float32 mat is h_prev's buffer and mat_next is unused)
  Rows xproj;             // [4u] per row
  Rows h_prev, c_prev;    // state before this step, [u] per row
  Rows out_prev;          // previous output, or ptr null (zeros) at the first step
  const float* mask;      // mask of this step (row b at mask[b * mask_stride]), or null
  size_t mask_stride;
  Rows gates, c, h, out;  // this step's [4u], [u], [u], [u]; h is the next step's h_prev (or h_last)
  Rows h_last, c_last;
  Rows h_next;            // h again, in a contiguous [B][u] buffer that the next step reads
};

template <int MR>
void forward_block(const Forward& a, int r0, int block) {
  const int u = a.u, j0 = block * VL, n = std::min(VL, u - j0);
  vf acc[MR][4] = {};
  recurrent_forward<MR, 4>(*a.panels, u, a.mat, r0, block, acc);
  for (int r = 0; r < MR; ++r) {
    const int b = r0 + r;
    const float* xp = a.xproj.row(b) + j0;
    const vf i = vsigmoid(acc[r][0] + load_n(xp, n));
    const vf f = vsigmoid(acc[r][1] + load_n(xp + u, n));
    const vf g = vtanh(acc[r][2] + load_n(xp + 2 * u, n));
    const vf o = vsigmoid(acc[r][3] + load_n(xp + 3 * u, n));
    const vf c_prev = load_n(a.c_prev.row(b) + j0, n);
    vf c = f * c_prev + i * g;
    vf h = o * vtanh(c);
    vf out = h;
    if (a.mask && a.mask[b * a.mask_stride] == 0.0f) {
      c = c_prev;
      h = load_n(a.h_prev.row(b) + j0, n);
      out = a.out_prev.ptr ? load_n(a.out_prev.row(b) + j0, n) : vf{};
    }
    float* gp = a.gates.row(b) + j0;
    store_n(gp, i, n);
    store_n(gp + u, f, n);
    store_n(gp + 2 * u, g, n);
    store_n(gp + 3 * u, o, n);
    store_n(a.c.row(b) + j0, c, n);
    store_n(a.out.row(b) + j0, out, n);
    if (a.last) {
      store_n(a.h_last.row(b) + j0, h, n);
      store_n(a.c_last.row(b) + j0, c, n);
    } else {
      store_n(a.h.row(b) + j0, h, n);
      store_n(a.h_next.row(b) + j0, h, n);
      if (a.mat_next) a.mat_next.store(b, j0, h, n);
    }
  }
}

class LstmForwardOp : public OpKernel {
 public:
  explicit LstmForwardOp(OpKernelConstruction* ctx) : OpKernel(ctx) { read_recurrence(ctx, &mode_); }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& xproj = ctx->input(0);
    const Tensor& kernel = ctx->input(1);
    const Tensor& h0 = ctx->input(2);
    const Tensor& c0 = ctx->input(3);
    const Tensor& mask = ctx->input(4);
    OP_REQUIRES(ctx, xproj.dims() == 3 && kernel.dims() == 2,
                tensorflow::errors::InvalidArgument("xproj must be [B, T, 4u], recurrent_kernel [u, 4u]"));
    const int B = xproj.dim_size(0), T = xproj.dim_size(1), u = kernel.dim_size(0);
    OP_REQUIRES(ctx, kernel.dim_size(1) == 4 * u && xproj.dim_size(2) == 4 * u,
                tensorflow::errors::InvalidArgument("recurrent_kernel must be [u, 4u] and xproj [B, T, 4u]"));
    OP_REQUIRES(ctx, h0.shape() == TensorShape({B, u}) && c0.shape() == TensorShape({B, u}),
                tensorflow::errors::InvalidArgument("h0 and c0 must be [B, u]"));
    OP_REQUIRES(ctx, T > 0, tensorflow::errors::InvalidArgument("the sequence must have at least one step"));
    const bool masked = mask.NumElements() > 0;
    OP_REQUIRES(ctx, !masked || mask.shape() == TensorShape({B, T}),
                tensorflow::errors::InvalidArgument("mask must be [B, T] or empty"));
    Tensor *out, *h_prev, *cs, *gates, *h_last, *c_last;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B, T, u}), &out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, T, u}), &h_prev));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({B, T, u}), &cs));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({B, T, 4 * u}), &gates));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, TensorShape({B, u}), &h_last));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(5, TensorShape({B, u}), &c_last));
    if (B == 0 || u == 0) return;

    const int blocks = (u + VL - 1) / VL;
    const Panels panels = pack_forward(kernel.flat<float>().data(), u, 4, mode_);

    const size_t seq = static_cast<size_t>(T) * u, seq4 = seq * 4;
    float* out_p = out->flat<float>().data();
    float* hp_p = h_prev->flat<float>().data();
    float* c_p = cs->flat<float>().data();
    float* g_p = gates->flat<float>().data();
    float* x_p = const_cast<float*>(xproj.flat<float>().data());
    float* h0_p = const_cast<float*>(h0.flat<float>().data());
    float* c0_p = const_cast<float*>(c0.flat<float>().data());
    for (int b = 0; b < B; ++b) std::memcpy(hp_p + b * seq, h0_p + b * u, sizeof(float) * u);
    // The recurrent product reads h_{t-1} from a contiguous buffer: rows T * u apart in h_prev would
    // make its loads hop across pages. Two buffers, written and read on alternate steps.
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
                {x_p + t * 4 * u, seq4},
                {h_buf.data() + (t & 1) * B * su, su},
                t ? Rows{c_p + (t - 1) * u, seq} : Rows{c0_p, static_cast<size_t>(u)},
                {t ? out_p + (t - 1) * u : nullptr, seq},
                m_p ? m_p + t : nullptr, static_cast<size_t>(T),
                {g_p + t * 4 * u, seq4}, {c_p + t * u, seq}, {last ? nullptr : hp_p + (t + 1) * u, seq},
                {out_p + t * u, seq},
                {h_last->flat<float>().data(), su}, {c_last->flat<float>().data(), su},
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

struct Backward {
  int u, t;                 // the step whose d(gates) this phase computes (-1: only d_h0)
  const Panels* panels;     // U^T's columns of each block of VL units, packed for the product
  Operand dz_next;          // d(gates) of step t+1 ([4u] per row) as the product reads it; none at the last step
  const float* mask_next;   // mask of step t+1, or null
  const float* mask;        // mask of step t, or null
  size_t mask_stride;
  Rows gates;               // activated gates of step t
  Rows c, c_prev;           // cell state after and before step t
  Rows d_out;               // gradient of step t's output
  float *dh, *dc, *carry;   // [B][u] running gradients (carry: of the repeated output, masked only)
  Rows dz;                  // d(gates) of step t (output)
  Operand dz_copy;          // the same as the next phase's product reads it
};

inline void backward_epilogue(const Backward& a, int b, int j0, int n, const vf* acc) {
  const int u = a.u;
  const size_t s = static_cast<size_t>(b) * u + j0;
  vf dh = load_n(a.dh + s, n);
  if (acc && !(a.mask_next && a.mask_next[b * a.mask_stride] == 0.0f)) dh = *acc;
  if (a.t < 0) {
    store_n(a.dh + s, dh, n);  // d_h0
    return;
  }
  vf dc = load_n(a.dc + s, n);
  vf d_out = load_n(a.d_out.row(b) + j0, n);
  if (a.mask) d_out += load_n(a.carry + s, n);
  float* dz = a.dz.row(b) + j0;
  if (!(a.mask && a.mask[b * a.mask_stride] == 0.0f)) {
    dh += d_out;
    const float* gp = a.gates.row(b) + j0;
    const vf i = load_n(gp, n), f = load_n(gp + u, n), g = load_n(gp + 2 * u, n), o = load_n(gp + 3 * u, n);
    const vf tc = vtanh(load_n(a.c.row(b) + j0, n));
    const vf one = splat(1.0f);
    dc += dh * o * (one - tc * tc);
    store_n(dz, dc * g * i * (one - i), n);
    store_n(dz + u, dc * load_n(a.c_prev.row(b) + j0, n) * f * (one - f), n);
    store_n(dz + 2 * u, dc * i * (one - g * g), n);
    store_n(dz + 3 * u, dh * tc * o * (one - o), n);
    for (int g = 0; g < 4; ++g) a.dz_copy.store(b, j0 + g * u, load_n(dz + g * u, n), n);
    dc *= f;
    if (a.mask) store_n(a.carry + s, vf{}, n);
  } else {
    for (int g = 0; g < 4; ++g) store_n(dz + g * u, vf{}, n);
    for (int g = 0; g < 4; ++g) a.dz_copy.store(b, j0 + g * u, vf{}, n);
    store_n(a.carry + s, d_out, n);
  }
  store_n(a.dh + s, dh, n);
  store_n(a.dc + s, dc, n);
}

// Rows [r0, r0 + MR) of NB consecutive unit blocks from `block`: dh = dz_next U^T, then the epilogue.
template <int MR, int NB>
void backward_block(const Backward& a, int r0, int block) {
  vf acc[MR][NB] = {};
  if (a.dz_next) recurrent_backward<MR, NB>(*a.panels, 4 * a.u, a.dz_next, r0, block, acc);
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < NB; ++q) {
      const int j0 = (block + q) * VL;
      backward_epilogue(a, r0 + r, j0, std::min(VL, a.u - j0), a.dz_next ? &acc[r][q] : nullptr);
    }
}

class LstmBackwardOp : public OpKernel {
 public:
  explicit LstmBackwardOp(OpKernelConstruction* ctx) : OpKernel(ctx) { read_recurrence(ctx, &mode_); }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& kernel = ctx->input(0);
    const Tensor& c0 = ctx->input(1);
    const Tensor& mask = ctx->input(2);
    const Tensor& cs = ctx->input(3);
    const Tensor& gates = ctx->input(4);
    const Tensor& d_out = ctx->input(5);
    const Tensor& d_h_last = ctx->input(6);
    const Tensor& d_c_last = ctx->input(7);
    OP_REQUIRES(ctx, gates.dims() == 3 && kernel.dims() == 2,
                tensorflow::errors::InvalidArgument("gates must be [B, T, 4u], recurrent_kernel [u, 4u]"));
    const int B = gates.dim_size(0), T = gates.dim_size(1), u = kernel.dim_size(0);
    const TensorShape seq_shape({B, T, u}), state({B, u});
    OP_REQUIRES(ctx, kernel.dim_size(1) == 4 * u && gates.dim_size(2) == 4 * u && cs.shape() == seq_shape &&
                     d_out.shape() == seq_shape && c0.shape() == state && d_h_last.shape() == state &&
                     d_c_last.shape() == state,
                tensorflow::errors::InvalidArgument("inconsistent shapes"));
    const bool masked = mask.NumElements() > 0;
    OP_REQUIRES(ctx, !masked || mask.shape() == TensorShape({B, T}),
                tensorflow::errors::InvalidArgument("mask must be [B, T] or empty"));
    Tensor *dz, *d_h0, *d_c0;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, gates.shape(), &dz));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, state, &d_h0));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, state, &d_c0));
    if (B == 0 || u == 0) return;
    float* dh = d_h0->flat<float>().data();
    float* dc = d_c0->flat<float>().data();
    std::memcpy(dh, d_h_last.flat<float>().data(), sizeof(float) * B * u);
    std::memcpy(dc, d_c_last.flat<float>().data(), sizeof(float) * B * u);
    if (T == 0) return;

    const int blocks = (u + VL - 1) / VL;
    const int n4 = 4 * u;
    const Panels panels = pack_backward(kernel.flat<float>().data(), u, 4, mode_);
    std::vector<float> carry(masked ? static_cast<size_t>(B) * u : 0, 0.0f);
    const OperandBuffers dz_buf(mode_, B, n4);  // alternate steps, as h_buf in the forward op

    const size_t seq = static_cast<size_t>(T) * u, seq4 = seq * 4;
    const float* m_p = masked ? mask.flat<float>().data() : nullptr;
    float* c_p = const_cast<float*>(cs.flat<float>().data());
    float* c0_p = const_cast<float*>(c0.flat<float>().data());
    float* g_p = const_cast<float*>(gates.flat<float>().data());
    float* d_p = const_cast<float*>(d_out.flat<float>().data());
    float* dz_p = dz->flat<float>().data();
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    const int shards = num_shards(ctx, blocks);
    for (int t = T - 1; t >= -1; --t) {
      const bool has_next = t + 1 < T;
      const bool here = t >= 0;
      Backward a{u, t, &panels, has_next ? dz_buf.at(t + 1) : Operand{},
                 has_next && m_p ? m_p + t + 1 : nullptr,
                 here && m_p ? m_p + t : nullptr, static_cast<size_t>(T),
                 {here ? g_p + t * n4 : nullptr, seq4},
                 {here ? c_p + t * u : nullptr, seq},
                 t > 0 ? Rows{c_p + (t - 1) * u, seq} : Rows{c0_p, static_cast<size_t>(u)},
                 {here ? d_p + t * u : nullptr, seq},
                 dh, dc, carry.data(),
                 {here ? dz_p + t * n4 : nullptr, seq4},
                 here ? dz_buf.at(t) : Operand{}};
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

REGISTER_OP("CharseqLstmForward")
    .Input("xproj: float")
    .Input("recurrent_kernel: float")
    .Input("h0: float")
    .Input("c0: float")
    .Input("mask: float")
    .Output("outputs: float")
    .Output("h_prev: float")
    .Output("c_states: float")
    .Output("gates: float")
    .Output("h_last: float")
    .Output("c_last: float")
    .Attr(CHARSEQ_RECURRENCE_ATTR)
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      auto x = c->input(0), k = c->input(1);
      TF_RETURN_IF_ERROR(c->WithRank(x, 3, &x));
      TF_RETURN_IF_ERROR(c->WithRank(k, 2, &k));
      auto seq = c->MakeShape({c->Dim(x, 0), c->Dim(x, 1), c->Dim(k, 0)});
      c->set_output(0, seq);
      c->set_output(1, seq);
      c->set_output(2, seq);
      c->set_output(3, x);
      c->set_output(4, c->input(2));
      c->set_output(5, c->input(2));
      return tensorflow::OkStatus();
    });

REGISTER_OP("CharseqLstmBackward")
    .Input("recurrent_kernel: float")
    .Input("c0: float")
    .Input("mask: float")
    .Input("c_states: float")
    .Input("gates: float")
    .Input("d_outputs: float")
    .Input("d_h_last: float")
    .Input("d_c_last: float")
    .Output("d_gates: float")
    .Output("d_h0: float")
    .Output("d_c0: float")
    .Attr(CHARSEQ_RECURRENCE_ATTR)
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(4));
      c->set_output(1, c->input(1));
      c->set_output(2, c->input(1));
      return tensorflow::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("CharseqLstmForward").Device(tensorflow::DEVICE_CPU), LstmForwardOp);
REGISTER_KERNEL_BUILDER(Name("CharseqLstmBackward").Device(tensorflow::DEVICE_CPU), LstmBackwardOp);

}  // namespace charseq
