// The LSTM recurrence of a whole sequence as two TensorFlow ops, for CPUs.
//
// Keras runs an LSTM on a CPU as a while_loop of a dozen small ops per step, and each op's
// dispatch costs about as much as its arithmetic. Here the whole forward loop is one op and the
// whole backward loop another; the input projection x W and the weight gradients are large
// matrix products done outside, by the caller (charseq/compiled_lstm.py); the bias is added to
// x W here, as the gates read it, and its gradient summed here, as the gates' gradients are
// written. The loops are sequence.h's, shared with the GRU; this file holds the LSTM's gate
// arithmetic and its ops.
//
// Layout and semantics are Keras' (keras.layers.LSTM, default activations): gate order i, f, c, o;
// batch-major tensors [B, T, ...] as Keras' (no transposes around the op); masking as in sequence.h.
//
// Built with -O3 -march=native (the build cache is keyed by the CPU's flags); the vectors are GCC
// vector extensions, so the same source compiles for AVX-512, AVX2 or plain SSE/NEON.

#include "sequence.h"

namespace charseq {
namespace {

// The cell states over the sequence: c0 [B, u] and c_t of each step [B, T, u].
struct CellStates {
  float *c0, *cs;
  int T, u;

  Rows at(int t) const { return {cs + t * u, static_cast<size_t>(T) * u}; }
  Rows before(int t) const { return t ? at(t - 1) : Rows{c0, static_cast<size_t>(u)}; }
};

// ------------------------------------------------------------------------------------ forward

struct Forward {
  static constexpr int G = 4, kStored = 4;  // gates stored: i, f, g, o (activated)

  // The LSTM's part of step t: its cell state, and the epilogue on m = h_{t-1} U for one row.
  struct Step {
    Rows c_prev, c, c_last;  // c_{t-1} (c0 at the first step), c_t, and the final c

    CHARSEQ_EPILOGUE vf operator()(const ForwardStep& a, int b, int j0, int n, const vf* m, bool masked) const {
      const int u = a.u;
      const vf i = vsigmoid(m[0] + a.x(b, j0, n));
      const vf f = vsigmoid(m[1] + a.x(b, u + j0, n));
      const vf g = vtanh(m[2] + a.x(b, 2 * u + j0, n));
      const vf o = vsigmoid(m[3] + a.x(b, 3 * u + j0, n));
      const vf c_before = load_n(c_prev.row(b) + j0, n);
      const vf c_now = f * c_before + i * g;
      a.gates.store(b, gate_at(kStored, j0, 0, n), i, n);
      a.gates.store(b, gate_at(kStored, j0, 1, n), f, n);
      a.gates.store(b, gate_at(kStored, j0, 2, n), g, n);
      a.gates.store(b, gate_at(kStored, j0, 3, n), o, n);
      store_n(c.row(b) + j0, masked ? c_before : c_now, n);
      if (a.last) store_n(c_last.row(b) + j0, masked ? c_before : c_now, n);
      return o * vtanh(c_now);
    }
  };

  CellStates c;
  float* c_last;  // [B, u]

  Step step(int t) const { return {c.before(t), c.at(t), {c_last, static_cast<size_t>(c.u)}}; }
};

void forward(OpKernelContext* ctx, Recurrence mode) {
  const auto [xproj, kernel, bias, h0, c0, mask] = inputs<6>(ctx);
  ForwardSequence s;
  if (!s.read(ctx, Forward::G, xproj, kernel, bias, h0, mask)) return;
  const TensorShape seq({s.B, s.T, s.u}), state({s.B, s.u});
  Tensor *out, *h_prev, *cs, *gates, *h_last, *c_last;
  if (!check(ctx, c0.shape() == state, "c0 must be [B, u]") ||
      !allocate_outputs(ctx, {{seq, &out}, {seq, &h_prev}, {seq, &cs}, {TensorShape({s.B, s.T, 4 * s.u}), &gates},
                              {state, &h_last}, {state, &c_last}}))
    return;
  s.write_to(*out, *h_prev, *gates, *h_last);
  run_forward(ctx, mode, s, Forward{{data(c0), data(*cs), s.T, s.u}, data(*c_last)});
}

// ----------------------------------------------------------------------------------- backward
//
// With dh and dc the gradients reaching h_t and c_t (tc = tanh(c_t)):
//   dc += dh o (1 - tc^2),  d(i, f, g, o) = (dc g, dc c_{t-1}, dc i, dh tc) times each activation's
//   derivative;
// d(gates) is the gradient of both x W + b and m = h_{t-1} U; h_{t-1} gets only d(m) U^T, and c_{t-1}
// gets dc f.

struct Backward {
  static constexpr int G = 4, kStored = 4;
  static constexpr bool kDirect = false;  // h_{t-1} gets only d(m) U^T

  // The LSTM's part of step t: the cell state's gradient, and the epilogue for one row.
  struct Step {
    Rows c, c_prev;  // cell state after and before step t
    float* dc;       // [B][u]: the gradient reaching c_t; c_{t-1}'s afterwards

    CHARSEQ_EPILOGUE vf operator()(const BackwardStep& a, int b, int j0, int n, vf dh) const {
      const int u = a.u;
      const size_t s = static_cast<size_t>(b) * u + j0;
      const vf i = a.gates.load(b, gate_at(kStored, j0, 0, n), n), f = a.gates.load(b, gate_at(kStored, j0, 1, n), n),
               g = a.gates.load(b, gate_at(kStored, j0, 2, n), n), o = a.gates.load(b, gate_at(kStored, j0, 3, n), n);
      const vf tc = vtanh(load_n(c.row(b) + j0, n));
      const vf one = splat(1.0f);
      const vf d_c = load_n(dc + s, n) + dh * o * (one - tc * tc);
      a.put_dm(b, j0, 0, d_c * g * i * (one - i), n);
      a.put_dm(b, j0, 1, d_c * load_n(c_prev.row(b) + j0, n) * f * (one - f), n);
      a.put_dm(b, j0, 2, d_c * i * (one - g * g), n);
      a.put_dm(b, j0, 3, dh * tc * o * (one - o), n);
      store_n(dc + s, d_c * f, n);
      return vf{};
    }
    // c_t was c_{t-1} of the phase before, but for the first.
    CHARSEQ_PREFETCH void prefetch(int b, int j0) const {
      charseq::prefetch(c.row(b) + j0);
      charseq::prefetch(c_prev.row(b) + j0);
    }
  };

  CellStates c;
  float* dc;  // [B, u]

  Step step(int t) const { return t < 0 ? Step{} : Step{c.at(t), c.before(t), dc}; }  // t < 0: d_h0 only
};

void backward(OpKernelContext* ctx, Recurrence mode) {
  const auto [kernel, c0, mask, cs, gates, d_out, d_h_last, d_c_last] = inputs<8>(ctx);
  BackwardSequence s;
  if (!s.read(ctx, Backward::G, Backward::kStored, kernel, gates, d_out, d_h_last, mask)) return;
  const TensorShape state({s.B, s.u}), width({4 * s.u});
  Tensor *dz, *d_h0, *d_c0, *d_bias;
  if (!check(ctx, cs.shape() == d_out.shape() && c0.shape() == state && d_c_last.shape() == state,
             "c_states must be [B, T, u], c0 and d_c_last [B, u]") ||
      !allocate_outputs(ctx, {{gates.shape(), &dz}, {state, &d_h0}, {state, &d_c0}, {width, &d_bias}}))
    return;
  s.dh = data(*d_h0), s.dm = io_rows(*dz, static_cast<size_t>(s.T) * 4 * s.u), s.dm_sum = data(*d_bias);
  std::copy_n(data(d_c_last), s.B * s.u, data(*d_c0));
  run_backward(ctx, mode, s, Backward{{data(c0), data(cs), s.T, s.u}, data(*d_c0)});
}

// Registered when the library loads.
[[maybe_unused]] const auto forward_op =
    register_op("CharseqLstmForward", {"xproj", "recurrent_kernel", "bias", "h0", "c0", "mask"},
                {{"outputs", Shape::kSeq}, {"h_prev", Shape::kSeq}, {"c_states", Shape::kSeq}, {"gates", Shape::kSeq4},
                 {"h_last", Shape::kState}, {"c_last", Shape::kState}},
                0, 1, {"outputs", "h_prev", "gates"});
[[maybe_unused]] const auto backward_op =
    register_op("CharseqLstmBackward",
                {"recurrent_kernel", "c0", "mask", "c_states", "gates", "d_outputs", "d_h_last", "d_c_last"},
                {{"d_gates", Shape::kSeq4}, {"d_h0", Shape::kState}, {"d_c0", Shape::kState}, {"d_bias", Shape::kGates}},
                4, 0, {"gates", "d_outputs", "d_gates"});

}  // namespace

REGISTER_KERNEL_BUILDER(Name("CharseqLstmForward").Device(tensorflow::DEVICE_CPU), RecurrenceOp<forward>);
REGISTER_KERNEL_BUILDER(Name("CharseqLstmBackward").Device(tensorflow::DEVICE_CPU), RecurrenceOp<backward>);

}  // namespace charseq
