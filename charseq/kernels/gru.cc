// The GRU recurrence of a whole sequence as two TensorFlow ops, for CPUs: the LSTM's plan
// (lstm.cc) and loops (sequence.h) with the GRU's gate arithmetic.
//
// Semantics are Keras' GRU (keras.layers.GRU, default activations, reset_after=True, the Keras 3
// and cuDNN-compatible variant): gate order z, r, h; with m = h_{t-1} U + b_recurrent,
//   z = sigmoid(x_z + m_z),  r = sigmoid(x_r + m_r),  hh = tanh(x_h + r * m_h),
//   h_t = z * h_{t-1} + (1 - z) * hh.
// The input projection x W and the weight gradients are done by the caller
// (charseq/compiled_gru.py); b_input is added to x W here, as the gates read it.

#include "sequence.h"

namespace charseq {
namespace {

// ------------------------------------------------------------------------------------ forward

struct Forward {
  static constexpr int G = 3, kStored = 4;  // gates stored: z, r, hh and m_h

  // The GRU's part of step t: the epilogue on m = h_{t-1} U for one row.
  struct Step {
    const float* bias;  // b_recurrent [3u]

    CHARSEQ_EPILOGUE vf operator()(const ForwardStep& a, int b, int j0, int n, const vf* m, bool) const {
      const int u = a.u;
      const vf z = vsigmoid(m[0] + load_n(bias + j0, n) + a.x(b, j0, n));
      const vf r = vsigmoid(m[1] + load_n(bias + u + j0, n) + a.x(b, u + j0, n));
      const vf mh = m[2] + load_n(bias + 2 * u + j0, n);
      const vf hh = vtanh(a.x(b, 2 * u + j0, n) + r * mh);
      a.gates.store(b, gate_at(kStored, j0, 0, n), z, n);
      a.gates.store(b, gate_at(kStored, j0, 1, n), r, n);
      a.gates.store(b, gate_at(kStored, j0, 2, n), hh, n);
      a.gates.store(b, gate_at(kStored, j0, 3, n), mh, n);
      return z * load_n(a.h_prev.row(b) + j0, n) + (splat(1.0f) - z) * hh;
    }
  };

  const float* bias;
  Step step(int) const { return {bias}; }
};

void forward(OpKernelContext* ctx, Recurrence mode) {
  const auto [xproj, kernel, input_bias, bias, h0, mask] = inputs<6>(ctx);
  ForwardSequence s;
  if (!s.read(ctx, Forward::G, xproj, kernel, input_bias, h0, mask)) return;
  const TensorShape seq({s.B, s.T, s.u});
  Tensor *out, *h_prev, *gates, *h_last;
  if (!check(ctx, bias.shape() == TensorShape({3 * s.u}), "recurrent_bias must be [3u]") ||
      !allocate_outputs(ctx, {{seq, &out}, {seq, &h_prev}, {TensorShape({s.B, s.T, 4 * s.u}), &gates},
                              {h0.shape(), &h_last}}))
    return;
  s.write_to(*out, *h_prev, *gates, *h_last);
  run_forward(ctx, mode, s, Forward{data(bias)});
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
  static constexpr int G = 3, kStored = 4;
  static constexpr bool kDirect = true;  // h_{t-1} also gets dh z

  // The GRU's part of step t: the epilogue for one row.
  struct Step {
    Rows h_prev;  // state before step t

    CHARSEQ_EPILOGUE vf operator()(const BackwardStep& a, int b, int j0, int n, vf dh) const {
      const int u = a.u;
      const vf z = a.gates.load(b, gate_at(kStored, j0, 0, n), n), r = a.gates.load(b, gate_at(kStored, j0, 1, n), n),
               hh = a.gates.load(b, gate_at(kStored, j0, 2, n), n), mh = a.gates.load(b, gate_at(kStored, j0, 3, n), n);
      const vf one = splat(1.0f);
      const vf da_h = dh * (one - z) * (one - hh * hh);
      const vf da_z = dh * (load_n(h_prev.row(b) + j0, n) - hh) * z * (one - z);
      const vf da_r = da_h * mh * r * (one - r);
      a.put_dx(b, j0, 0, da_z, n);
      a.put_dx(b, j0, 1, da_r, n);
      a.put_dx(b, j0, 2, da_h, n);
      a.put_dm(b, j0, 0, da_z, n);
      a.put_dm(b, j0, 1, da_r, n);
      a.put_dm(b, j0, 2, da_h * r, n);
      return dh * z;
    }
    CHARSEQ_PREFETCH void prefetch(int b, int j0) const { charseq::prefetch(h_prev.row(b) + j0); }
  };

  float* h_prev;  // [B, T, u]
  int T, u;

  Step step(int t) const { return {{t >= 0 ? h_prev + t * u : nullptr, static_cast<size_t>(T) * u}}; }
};

void backward(OpKernelContext* ctx, Recurrence mode) {
  const auto [kernel, mask, h_prev, gates, d_out, d_h_last] = inputs<6>(ctx);
  BackwardSequence s;
  if (!s.read(ctx, Backward::G, Backward::kStored, kernel, gates, d_out, d_h_last, mask)) return;
  const TensorShape seq3({s.B, s.T, 3 * s.u});
  const TensorShape width({3 * s.u});
  Tensor *dx, *dm, *d_h0, *d_input_bias, *d_recurrent_bias;
  if (!check(ctx, h_prev.shape() == d_out.shape(), "h_prev must be [B, T, u]") ||
      !allocate_outputs(ctx, {{seq3, &dx}, {seq3, &dm}, {d_h_last.shape(), &d_h0}, {width, &d_input_bias},
                              {width, &d_recurrent_bias}}))
    return;
  const size_t stride = static_cast<size_t>(s.T) * 3 * s.u;
  s.dh = data(*d_h0), s.dm = io_rows(*dm, stride), s.dx = io_rows(*dx, stride);
  s.dx_sum = data(*d_input_bias), s.dm_sum = data(*d_recurrent_bias);
  run_backward(ctx, mode, s, Backward{data(h_prev), s.T, s.u});
}

// Registered when the library loads.
[[maybe_unused]] const auto forward_op =
    register_op("CharseqGruForward", {"xproj", "recurrent_kernel", "input_bias", "recurrent_bias", "h0", "mask"},
                {{"outputs", Shape::kSeq}, {"h_prev", Shape::kSeq}, {"gates", Shape::kSeq4}, {"h_last", Shape::kState}},
                0, 1, {"outputs", "gates"});
[[maybe_unused]] const auto backward_op =
    register_op("CharseqGruBackward", {"recurrent_kernel", "mask", "h_prev", "gates", "d_outputs", "d_h_last"},
                {{"d_xproj", Shape::kSeqG}, {"d_m", Shape::kSeqG}, {"d_h0", Shape::kState},
                 {"d_input_bias", Shape::kGates}, {"d_recurrent_bias", Shape::kGates}},
                2, 0, {"gates", "d_outputs", "d_xproj", "d_m"});

}  // namespace

REGISTER_KERNEL_BUILDER(Name("CharseqGruForward").Device(tensorflow::DEVICE_CPU), RecurrenceOp<forward>);
REGISTER_KERNEL_BUILDER(Name("CharseqGruBackward").Device(tensorflow::DEVICE_CPU), RecurrenceOp<backward>);

}  // namespace charseq
