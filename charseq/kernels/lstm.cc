// The LSTM recurrence of a whole sequence as two TensorFlow ops, for CPUs.
//
// Keras runs an LSTM on a CPU as a while_loop of a dozen small ops per step, and each op's
// dispatch costs about as much as its arithmetic. Here the whole forward loop is one op and the
// whole backward loop another; the input projection (x W + b) and the weight gradients are large
// matrix products done outside, by the caller (charseq/compiled_lstm.py). The loops are
// sequence.h's, shared with the GRU; this file holds the LSTM's gate arithmetic and its ops.
//
// Layout and semantics are Keras' (keras.layers.LSTM, default activations): gate order i, f, c, o;
// batch-major tensors [B, T, ...] as Keras' (no transposes around the op); masking as in sequence.h.
//
// Built with -O3 -march=native (the build cache is keyed by the CPU's flags); the vectors are GCC
// vector extensions, so the same source compiles for AVX-512, AVX2 or plain SSE/NEON.

#include "sequence.h"

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
  static constexpr int G = 4, kStored = 4, kRows = FMR;  // gates stored: i, f, g, o (activated)

  // The LSTM's part of step t: its cell state, and the epilogue on m = h_{t-1} U for one row.
  struct Step {
    Rows c_prev, c, c_last;  // c_{t-1} (c0 at the first step), c_t, and the final c

    vf operator()(const ForwardStep& a, int b, int j0, int n, const vf* m, bool masked) const {
      const int u = a.u;
      const float* xp = a.xproj.row(b) + j0;
      const vf i = vsigmoid(m[0] + load_n(xp, n));
      const vf f = vsigmoid(m[1] + load_n(xp + u, n));
      const vf g = vtanh(m[2] + load_n(xp + 2 * u, n));
      const vf o = vsigmoid(m[3] + load_n(xp + 3 * u, n));
      const vf c_before = load_n(c_prev.row(b) + j0, n);
      const vf c_now = f * c_before + i * g;
      float* gp = a.gates.row(b) + j0;
      store_n(gp, i, n);
      store_n(gp + u, f, n);
      store_n(gp + 2 * u, g, n);
      store_n(gp + 3 * u, o, n);
      store_n(c.row(b) + j0, masked ? c_before : c_now, n);
      if (a.last) store_n(c_last.row(b) + j0, masked ? c_before : c_now, n);
      return o * vtanh(c_now);
    }
  };

  float *c0, *cs, *c_last;  // [B, u], [B, T, u], [B, u]
  int T, u;

  Step step(int t) const {
    const size_t seq = static_cast<size_t>(T) * u, su = u;
    return {t ? Rows{cs + (t - 1) * u, seq} : Rows{c0, su}, {cs + t * u, seq}, {c_last, su}};
  }
};

void forward(OpKernelContext* ctx, Recurrence mode) {
  const auto [xproj, kernel, h0, c0, mask] = inputs<5>(ctx);
  OP_REQUIRES(ctx, xproj.dims() == 3 && kernel.dims() == 2,
              tensorflow::errors::InvalidArgument("xproj must be [B, T, 4u], recurrent_kernel [u, 4u]"));
  ForwardSequence s;
  s.B = xproj.dim_size(0), s.T = xproj.dim_size(1), s.u = kernel.dim_size(0);
  const TensorShape seq({s.B, s.T, s.u}), state({s.B, s.u});
  OP_REQUIRES(ctx, kernel.dim_size(1) == 4 * s.u && xproj.dim_size(2) == 4 * s.u,
              tensorflow::errors::InvalidArgument("recurrent_kernel must be [u, 4u] and xproj [B, T, 4u]"));
  OP_REQUIRES(ctx, h0.shape() == state && c0.shape() == state,
              tensorflow::errors::InvalidArgument("h0 and c0 must be [B, u]"));
  OP_REQUIRES(ctx, s.T > 0, tensorflow::errors::InvalidArgument("the sequence must have at least one step"));
  if (!read_mask(ctx, mask, s.B, s.T, &s.mask)) return;
  Tensor *out, *h_prev, *cs, *gates, *h_last, *c_last;
  if (!allocate_outputs(ctx, {{seq, &out}, {seq, &h_prev}, {seq, &cs}, {TensorShape({s.B, s.T, 4 * s.u}), &gates},
                              {state, &h_last}, {state, &c_last}}))
    return;
  s.xproj = data(xproj), s.U = data(kernel), s.h0 = data(h0);
  s.out = data(*out), s.h_prev = data(*h_prev), s.gates = data(*gates), s.h_last = data(*h_last);
  run_forward(ctx, mode, s, Forward{data(c0), data(*cs), data(*c_last), s.T, s.u});
}

// ----------------------------------------------------------------------------------- backward
//
// With dh and dc the gradients reaching h_t and c_t (tc = tanh(c_t)):
//   dc += dh o (1 - tc^2),  d(i, f, g, o) = (dc g, dc c_{t-1}, dc i, dh tc) times each activation's
//   derivative;
// d(gates) is the gradient of both x W + b and m = h_{t-1} U; h_{t-1} gets only d(m) U^T, and c_{t-1}
// gets dc f.

struct Backward {
  static constexpr int G = 4, kStored = 4, kRows = BMR;

  // The LSTM's part of step t: the cell state's gradient, and the epilogue for one row.
  struct Step {
    Rows c, c_prev;  // cell state after and before step t
    float* dc;       // [B][u]: the gradient reaching c_t; c_{t-1}'s afterwards

    vf operator()(const BackwardStep& a, int b, int j0, int n, vf dh, vf* dm, vf* dx) const {
      const int u = a.u;
      const size_t s = static_cast<size_t>(b) * u + j0;
      const float* gp = a.gates.row(b) + j0;
      const vf i = load_n(gp, n), f = load_n(gp + u, n), g = load_n(gp + 2 * u, n), o = load_n(gp + 3 * u, n);
      const vf tc = vtanh(load_n(c.row(b) + j0, n));
      const vf one = splat(1.0f);
      const vf d_c = load_n(dc + s, n) + dh * o * (one - tc * tc);
      dm[0] = d_c * g * i * (one - i);
      dm[1] = d_c * load_n(c_prev.row(b) + j0, n) * f * (one - f);
      dm[2] = d_c * i * (one - g * g);
      dm[3] = dh * tc * o * (one - o);
      for (int q = 0; q < G; ++q) dx[q] = dm[q];
      store_n(dc + s, d_c * f, n);
      return vf{};
    }
  };

  float *c0, *cs, *dc;  // [B, u], [B, T, u], [B, u]
  int T, u;

  Step step(int t) const {
    const size_t seq = static_cast<size_t>(T) * u, su = u;
    if (t < 0) return {{nullptr, seq}, {nullptr, su}, dc};
    return {{cs + t * u, seq}, t ? Rows{cs + (t - 1) * u, seq} : Rows{c0, su}, dc};
  }
};

void backward(OpKernelContext* ctx, Recurrence mode) {
  const auto [kernel, c0, mask, cs, gates, d_out, d_h_last, d_c_last] = inputs<8>(ctx);
  OP_REQUIRES(ctx, gates.dims() == 3 && kernel.dims() == 2,
              tensorflow::errors::InvalidArgument("gates must be [B, T, 4u], recurrent_kernel [u, 4u]"));
  BackwardSequence s;
  s.B = gates.dim_size(0), s.T = gates.dim_size(1), s.u = kernel.dim_size(0);
  const TensorShape seq({s.B, s.T, s.u}), state({s.B, s.u});
  OP_REQUIRES(ctx, kernel.dim_size(1) == 4 * s.u && gates.dim_size(2) == 4 * s.u && cs.shape() == seq &&
                   d_out.shape() == seq && c0.shape() == state && d_h_last.shape() == state &&
                   d_c_last.shape() == state,
              tensorflow::errors::InvalidArgument("inconsistent shapes"));
  if (!read_mask(ctx, mask, s.B, s.T, &s.mask)) return;
  Tensor *dz, *d_h0, *d_c0;
  if (!allocate_outputs(ctx, {{gates.shape(), &dz}, {state, &d_h0}, {state, &d_c0}})) return;
  s.dh = data(*d_h0), s.dm = data(*dz);
  std::copy_n(d_h_last.flat<float>().data(), s.B * s.u, s.dh);
  std::copy_n(d_c_last.flat<float>().data(), s.B * s.u, data(*d_c0));
  s.U = data(kernel), s.gates = data(gates), s.d_out = data(d_out);
  run_backward(ctx, mode, s, Backward{data(c0), data(cs), data(*d_c0), s.T, s.u});
}

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

REGISTER_KERNEL_BUILDER(Name("CharseqLstmForward").Device(tensorflow::DEVICE_CPU), RecurrenceOp<forward>);
REGISTER_KERNEL_BUILDER(Name("CharseqLstmBackward").Device(tensorflow::DEVICE_CPU), RecurrenceOp<backward>);

}  // namespace charseq
