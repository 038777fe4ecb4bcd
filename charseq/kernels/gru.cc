// The GRU recurrence of a whole sequence as two TensorFlow ops, for CPUs: the LSTM's plan
// (lstm.cc) and loops (sequence.h) with the GRU's gate arithmetic.
//
// Semantics are Keras' GRU (keras.layers.GRU, default activations, reset_after=True, the Keras 3
// and cuDNN-compatible variant): gate order z, r, h; with m = h_{t-1} U + b_recurrent,
//   z = sigmoid(x_z + m_z),  r = sigmoid(x_r + m_r),  hh = tanh(x_h + r * m_h),
//   h_t = z * h_{t-1} + (1 - z) * hh.
// The input projection (x W + b_input) and the weight gradients are done by the caller
// (charseq/compiled_gru.py).

#include "sequence.h"

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
  static constexpr int G = 3, kStored = 4;  // gates stored: z, r, hh and m_h
  static constexpr int kRows = FMR;

  // The GRU's part of step t: the epilogue on m = h_{t-1} U for one row.
  struct Step {
    const float* bias;  // b_recurrent [3u]

    vf operator()(const ForwardStep& a, int b, int j0, int n, const vf* m, bool) const {
      const int u = a.u;
      const float* xp = a.xproj.row(b) + j0;
      const vf z = vsigmoid(m[0] + load_n(bias + j0, n) + load_n(xp, n));
      const vf r = vsigmoid(m[1] + load_n(bias + u + j0, n) + load_n(xp + u, n));
      const vf mh = m[2] + load_n(bias + 2 * u + j0, n);
      const vf hh = vtanh(load_n(xp + 2 * u, n) + r * mh);
      float* gp = a.gates.row(b) + j0;
      store_n(gp, z, n);
      store_n(gp + u, r, n);
      store_n(gp + 2 * u, hh, n);
      store_n(gp + 3 * u, mh, n);
      return z * load_n(a.h_prev.row(b) + j0, n) + (splat(1.0f) - z) * hh;
    }
  };

  const float* bias;
  Step step(int) const { return {bias}; }
};

void forward(OpKernelContext* ctx, Recurrence mode) {
  const auto [xproj, kernel, bias, h0, mask] = inputs<5>(ctx);
  OP_REQUIRES(ctx, xproj.dims() == 3 && kernel.dims() == 2,
              tensorflow::errors::InvalidArgument("xproj must be [B, T, 3u], recurrent_kernel [u, 3u]"));
  ForwardSequence s;
  s.B = xproj.dim_size(0), s.T = xproj.dim_size(1), s.u = kernel.dim_size(0);
  const TensorShape seq({s.B, s.T, s.u}), state({s.B, s.u});
  OP_REQUIRES(ctx, kernel.dim_size(1) == 3 * s.u && xproj.dim_size(2) == 3 * s.u,
              tensorflow::errors::InvalidArgument("recurrent_kernel must be [u, 3u] and xproj [B, T, 3u]"));
  OP_REQUIRES(ctx, bias.shape() == TensorShape({3 * s.u}),
              tensorflow::errors::InvalidArgument("recurrent_bias must be [3u]"));
  OP_REQUIRES(ctx, h0.shape() == state, tensorflow::errors::InvalidArgument("h0 must be [B, u]"));
  OP_REQUIRES(ctx, s.T > 0, tensorflow::errors::InvalidArgument("the sequence must have at least one step"));
  if (!read_mask(ctx, mask, s.B, s.T, &s.mask)) return;
  Tensor *out, *h_prev, *gates, *h_last;
  if (!allocate_outputs(ctx, {{seq, &out}, {seq, &h_prev}, {TensorShape({s.B, s.T, 4 * s.u}), &gates},
                              {state, &h_last}}))
    return;
  s.xproj = data(xproj), s.U = data(kernel), s.h0 = data(h0);
  s.out = data(*out), s.h_prev = data(*h_prev), s.gates = data(*gates), s.h_last = data(*h_last);
  run_forward(ctx, mode, s, Forward{bias.flat<float>().data()});
}

// ----------------------------------------------------------------------------------- backward
//
// With dh the gradient reaching h_t:
//   d(hh) = dh (1 - z),  da_h = d(hh) (1 - hh^2),  da_z = dh (h_{t-1} - hh) z (1 - z),
//   da_r = da_h m_h r (1 - r);
// the gradient of the input projection is (da_z, da_r, da_h), that of m (the recurrent product
// plus its bias) is (da_z, da_r, da_h r), and the gradient reaching h_{t-1} is dh z + d(m) U^T.
// The op returns both per-step gradients; the caller turns them into the weight gradients.

struct Backward {
  static constexpr int G = 3, kStored = 4, kRows = BMR;

  // The GRU's part of step t: the epilogue for one row.
  struct Step {
    Rows h_prev;  // state before step t

    vf operator()(const BackwardStep& a, int b, int j0, int n, vf dh, vf* dm, vf* dx) const {
      const int u = a.u;
      const float* gp = a.gates.row(b) + j0;
      const vf z = load_n(gp, n), r = load_n(gp + u, n), hh = load_n(gp + 2 * u, n), mh = load_n(gp + 3 * u, n);
      const vf one = splat(1.0f);
      const vf da_h = dh * (one - z) * (one - hh * hh);
      dx[0] = dm[0] = dh * (load_n(h_prev.row(b) + j0, n) - hh) * z * (one - z);
      dx[1] = dm[1] = da_h * mh * r * (one - r);
      dx[2] = da_h;
      dm[2] = da_h * r;
      return dh * z;
    }
  };

  float* h_prev;  // [B, T, u]
  int T, u;

  Step step(int t) const { return {{t >= 0 ? h_prev + t * u : nullptr, static_cast<size_t>(T) * u}}; }
};

void backward(OpKernelContext* ctx, Recurrence mode) {
  const auto [kernel, mask, h_prev, gates, d_out, d_h_last] = inputs<6>(ctx);
  OP_REQUIRES(ctx, gates.dims() == 3 && kernel.dims() == 2,
              tensorflow::errors::InvalidArgument("gates must be [B, T, 4u], recurrent_kernel [u, 3u]"));
  BackwardSequence s;
  s.B = gates.dim_size(0), s.T = gates.dim_size(1), s.u = kernel.dim_size(0);
  const TensorShape seq({s.B, s.T, s.u}), state({s.B, s.u});
  OP_REQUIRES(ctx, kernel.dim_size(1) == 3 * s.u && gates.dim_size(2) == 4 * s.u && h_prev.shape() == seq &&
                   d_out.shape() == seq && d_h_last.shape() == state,
              tensorflow::errors::InvalidArgument("inconsistent shapes"));
  if (!read_mask(ctx, mask, s.B, s.T, &s.mask)) return;
  Tensor *dx, *dm, *d_h0;
  const TensorShape seq3({s.B, s.T, 3 * s.u});
  if (!allocate_outputs(ctx, {{seq3, &dx}, {seq3, &dm}, {state, &d_h0}})) return;
  s.dh = data(*d_h0), s.dm = data(*dm), s.dx = data(*dx);
  std::copy_n(d_h_last.flat<float>().data(), s.B * s.u, s.dh);
  s.U = data(kernel), s.gates = data(gates), s.d_out = data(d_out);
  run_backward(ctx, mode, s, Backward{data(h_prev), s.T, s.u});
}

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

REGISTER_KERNEL_BUILDER(Name("CharseqGruForward").Device(tensorflow::DEVICE_CPU), RecurrenceOp<forward>);
REGISTER_KERNEL_BUILDER(Name("CharseqGruBackward").Device(tensorflow::DEVICE_CPU), RecurrenceOp<backward>);

}  // namespace charseq
