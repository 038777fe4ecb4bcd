// The loops over a sequence that both compiled cells (lstm.cc, gru.cc) run: the skeleton of their
// forward and backward ops, with the cell's gate arithmetic plugged in as epilogues.
//
// Per step, the threads take items of unit blocks (VL units each) by chunks of batch rows
// (common.h's Shards): for each group of batch rows of an item a thread computes the recurrent
// product of the item's blocks in registers (h_{t-1} U forward, d(m)_{t+1} U^T backward,
// m = h_{t-1} U), hands the accumulators to the cell's epilogue while they are still in registers,
// and writes that step's results for those rows and units. One barrier per step; or, for small
// layers (kOwnRowsUnits), none: each thread runs every step of its own rows. Each output element is
// computed by one thread in a fixed order, so results do not depend on the thread count or
// scheduling. With a mask, a masked step keeps the state and repeats the previous output (zeros
// before the first real step), as Keras' CPU loop does.
//
// A cell is two types, one per pass, each with
//   G             gate columns of U ([u, G u], Keras' layout),
//   kStored       values per unit the forward pass stores in `gates` for the backward pass (in the
//                 ops' `io` type, laid out by gate_at),
//   kDirect       (backward) whether part of h_t's gradient reaches h_{t-1} other than through m,
//   step(t)       its own rows of step t (the LSTM's cell state, the GRU's bias), whose call operator
//                 (CHARSEQ_EPILOGUE) is the epilogue of one row and one block of units (see
//                 forward_block, backward_block); backward, also its prefetch(b, j0), which asks for
//                 the lines of its own [B, T, u] rows that the epilogue of row b, units from j0, reads.

#pragma once

#include <tuple>
#include <utility>

#include "common.h"

namespace charseq {

// ------------------------------------------------------------------------------ op plumbing

// The op's first N inputs, to bind by name: `const auto [x, kernel, h0] = inputs<3>(ctx);`.
template <size_t... I>
auto inputs(OpKernelContext* ctx, std::index_sequence<I...>) {
  return std::tie(ctx->input(I)...);
}
template <size_t N>
auto inputs(OpKernelContext* ctx) {
  return inputs(ctx, std::make_index_sequence<N>{});
}

// Allocates the op's outputs 0, 1, ... with these shapes; false (the op's error set) if one fails.
inline bool allocate_outputs(OpKernelContext* ctx, std::initializer_list<std::pair<TensorShape, Tensor**>> outputs) {
  int i = 0;
  for (const auto& [shape, tensor] : outputs) {
    const auto status = ctx->allocate_output(i++, shape, tensor);
    if (!status.ok()) {
      ctx->SetStatus(status);
      return false;
    }
  }
  return true;
}

// A tensor's floats; the ops only read their inputs.
inline float* data(const Tensor& t) { return const_cast<float*>(t.flat<float>().data()); }

// A sequence typed by the op's `io` attribute, as rows `stride` elements apart.
inline IoRows io_rows(const Tensor& t, size_t stride) {
  return {const_cast<char*>(t.tensor_data().data()), stride, t.dtype() == tensorflow::DT_BFLOAT16};
}

// Sets the op's InvalidArgument error from the message's parts where `ok` is false; returns ok.
template <class... Parts>
bool check(OpKernelContext* ctx, bool ok, const Parts&... message) {
  if (!ok) ctx->SetStatus(tensorflow::errors::InvalidArgument(message...));
  return ok;
}

// The mask's floats, or null where it is empty (every step is real); false (the op's error set)
// if it is neither [B, T] nor empty.
inline bool read_mask(OpKernelContext* ctx, const Tensor& mask, int B, int T, const float** out) {
  *out = mask.NumElements() > 0 ? mask.flat<float>().data() : nullptr;
  return check(ctx, !*out || mask.shape() == TensorShape({B, T}), "mask must be [B, T] or empty");
}

// An op of one pass of one cell: `compute` with the op's `recurrence` attribute.
template <void (*compute)(OpKernelContext*, Recurrence)>
class RecurrenceOp : public OpKernel {
 public:
  explicit RecurrenceOp(OpKernelConstruction* ctx) : OpKernel(ctx) { read_recurrence(ctx, &mode_); }
  void Compute(OpKernelContext* ctx) override { compute(ctx, mode_); }

 private:
  Recurrence mode_ = Recurrence::kFloat32;
};

// The shape of an op's output, from its input `seq` [B, T, .] and its recurrent_kernel [u, G u]:
// [B, T, u], [B, T, G u], [B, T, 4u] (these three index `width` in register_op), [B, u] or [G u].
enum class Shape { kSeq, kSeqG, kSeq4, kState, kGates };

// Registers op `name` when the library loads: inputs and outputs named in order, float but for
// those named in `io`, which take the type of the `io` attribute (float or bfloat16: IoRows); the
// `recurrence` attribute; and the outputs' shapes from inputs `seq` and `kernel`.
inline auto register_op(const char* name, std::initializer_list<const char*> inputs,
                        std::initializer_list<std::pair<const char*, Shape>> outputs, int seq, int kernel,
                        std::initializer_list<std::string> io) {
  tensorflow::register_op::OpDefBuilderWrapper op(name);
  const auto type = [&](const char* tensor) {
    return std::find(io.begin(), io.end(), tensor) != io.end() ? ": io" : ": float";
  };
  for (const char* input : inputs) op.Input(input + std::string(type(input)));
  std::vector<Shape> shapes;
  for (const auto& [output, shape] : outputs) {
    op.Output(output + std::string(type(output)));
    shapes.push_back(shape);
  }
  op.Attr("io: {float, bfloat16} = DT_FLOAT");
  op.Attr(CHARSEQ_RECURRENCE_ATTR).SetShapeFn([=](tensorflow::shape_inference::InferenceContext* c) {
    auto x = c->input(seq), k = c->input(kernel);
    TF_RETURN_IF_ERROR(c->WithRank(x, 3, &x));
    TF_RETURN_IF_ERROR(c->WithRank(k, 2, &k));
    tensorflow::shape_inference::DimensionHandle four_u;
    TF_RETURN_IF_ERROR(c->Multiply(c->Dim(k, 0), 4, &four_u));
    const auto B = c->Dim(x, 0), T = c->Dim(x, 1), u = c->Dim(k, 0);
    const tensorflow::shape_inference::DimensionHandle width[] = {u, c->Dim(k, 1), four_u};
    for (size_t i = 0; i < shapes.size(); ++i)
      c->set_output(i, shapes[i] == Shape::kState   ? c->MakeShape({B, u})
                       : shapes[i] == Shape::kGates ? c->MakeShape({c->Dim(k, 1)})
                                                    : c->MakeShape({B, T, width[static_cast<int>(shapes[i])]}));
    return absl::OkStatus();
  });
  return op();
}

// Where stored gate g of the unit block [j0, j0 + n) sits in a row of the S u stored gates: each
// block's S gates side by side (S n values), so that a block's part of a row is its own cache lines
// (in bfloat16 one gate's 16 values are half a line, which the neighbouring block, computed on
// another thread, would otherwise share).
inline int gate_at(int S, int j0, int g, int n) { return j0 * S + g * n; }

// Batch rows per register block: forward kForwardAccumulators / G rows x G gates, backward
// kBackwardRows rows x 2 unit blocks, leaving vector registers (32 with AVX-512, 16 below it) for
// U's values and the broadcast row value.
#if defined(__AVX512F__)
constexpr int kForwardAccumulators = 24, kBackwardRows = 6;
// On AMX tiles the sums are in tiles, not vector registers: 16 rows (a tile's), and backward 4 unit
// blocks (4 tiles of sums).
constexpr int kTileRows = 16, kTileBlocks = 4;
#else
constexpr int kForwardAccumulators = 12, kBackwardRows = 4;
#endif

// Up to this many units, where the batch has rows for more than one thread, each thread runs every
// step of its own rows (at least kOwnRowsMultiple of them) instead of sharing each step's items
// out: a row's steps read only that row's state, and the weights fit each core's cache, so no
// thread waits for another between steps. The hand-off took 20-30% of the time of a step of 128
// rows of 128 units on AMX tiles. Larger layers share each step (each thread then reads only its
// units' weights): the same split at 256 and 512 units, 64 rows, made no difference.
constexpr int kOwnRowsUnits = 128, kOwnRowsMultiple = 16;

// A block's rows of a [B, T, width] sequence are T * width apart, a stride the hardware prefetchers
// do not follow: so each block asks for the lines its epilogue reads (and writes) before its
// product, which hides their latency.
//
// Whatever only prefetches is CHARSEQ_PREFETCH, inlined where it is called: GCC finds a function
// whose body only prefetches free of effects ("const") and drops the calls to it, silently (GCC 12
// did so with the forward pass's, which made the bfloat16 forward op up to a quarter slower).
#define CHARSEQ_PREFETCH __attribute__((always_inline)) inline
CHARSEQ_PREFETCH void prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }
CHARSEQ_PREFETCH void prefetch_write(const void* p) { __builtin_prefetch(p, 1, 3); }

// The cells' epilogues are inlined into the blocks, so that the accumulators stay in registers
// (GCC otherwise calls the LSTM's, whose exp polynomials make it large, and spills them).
#define CHARSEQ_EPILOGUE __attribute__((always_inline)) inline

// ------------------------------------------------------------------------------------ forward

// What the forward loop reads and writes, batch-major ([B, T, ...]) as Keras' tensors.
struct ForwardSequence {
  int B = 0, T = 0, u = 0;
  IoRows xproj;                 // [B, T, G u]: x W, computed by the caller
  const float* bias = nullptr;  // [G u]: b, added to x W here
  float* U = nullptr;           // [u, G u]
  float* h0 = nullptr;          // [B, u]
  const float* mask = nullptr;  // [B, T], or null
  IoRows out;                   // [B, T, u] (in bfloat16 where the cell's op types it by `io`: the
                                // layer's output in a bfloat16 model, with no conversion op after)
  IoRows h_prev;                // [B, T, u]: h_{t-1} of each step, for the backward pass and the
                                // recurrent kernel's gradient (in bfloat16 where the cell's op
                                // types it by `io`, as that gradient's product reads it)
  IoRows gates;                 // [B, T, kStored u]: what the cell's backward pass reads (gate_at)
  float* h_last = nullptr;      // [B, u]

  // The sizes and inputs, checked; false (the op's error set) if one does not fit.
  bool read(OpKernelContext* ctx, int G, const Tensor& xproj_in, const Tensor& kernel, const Tensor& bias_in,
            const Tensor& h0_in, const Tensor& mask_in) {
    if (!check(ctx, xproj_in.dims() == 3 && kernel.dims() == 2 && kernel.dim_size(1) == G * kernel.dim_size(0) &&
                        xproj_in.dim_size(2) == kernel.dim_size(1),
               "xproj must be [B, T, ", G, "u], recurrent_kernel [u, ", G, "u]"))
      return false;
    B = xproj_in.dim_size(0), T = xproj_in.dim_size(1), u = kernel.dim_size(0);
    xproj = io_rows(xproj_in, static_cast<size_t>(T) * G * u), bias = data(bias_in), U = data(kernel), h0 = data(h0_in);
    return check(ctx, bias_in.shape() == TensorShape({G * u}), "bias must be [", G, "u]") &&
           check(ctx, h0_in.shape() == TensorShape({B, u}), "h0 must be [B, u]") &&
           check(ctx, T > 0, "the sequence must have at least one step") && read_mask(ctx, mask_in, B, T, &mask);
  }

  // The op's outputs the loop writes, allocated [B, T, u], [B, T, u], [B, T, 4u] and [B, u].
  void write_to(const Tensor& out_t, const Tensor& h_prev_t, const Tensor& gates_t, const Tensor& h_last_t) {
    const size_t seq = static_cast<size_t>(T) * u;
    out = io_rows(out_t, seq), h_prev = io_rows(h_prev_t, seq), gates = io_rows(gates_t, 4 * seq);
    h_last = data(h_last_t);
  }
};

// One forward step as the epilogues see it; rows are [u] wide unless said.
struct ForwardStep {
  int u;
  bool last;              // the last step: h_t goes to h_last
  const Panels* panels;   // U packed for the product
  Operand mat, mat_next;  // h_{t-1} as the product reads it, and where h_t goes for the next step's
                          // (in float32 mat is h_prev's buffer and mat_next is unused)
  IoRows xproj;           // [G u]: x W
  const float* bias;      // [G u]: b
  Rows h_prev;            // h_{t-1}, in a contiguous [B][u] buffer
  IoRows out_prev;        // previous output, or null (zeros) at the first step
  const float* mask;      // mask of this step (row b at mask[b * mask_stride]), or null
  size_t mask_stride;
  IoRows gates;           // [kStored u], unit block by unit block (gate_at)
  IoRows h;               // h_t: the sequence's h_prev at t + 1 (null at the last step)
  IoRows out;             // output
  Rows h_last;
  Rows h_next;            // h_t again, in the contiguous buffer the next step reads

  bool masked(int b) const { return mask && mask[b * mask_stride] == 0.0f; }
  // x W + b of row b, units [j, j + n) of the G u.
  vf x(int b, int j, int n) const { return xproj.load(b, j, n) + load_n(bias + j, n); }
};

// Asks for the lines of row b, units from j0, that the forward epilogue reads and writes.
template <int G, int S>
CHARSEQ_PREFETCH void forward_prefetch(const ForwardStep& a, int b, int j0, int n) {
  for (int g = 0; g < G; ++g) prefetch(a.xproj.at(b, g * a.u + j0));
  for (int g = 0; g < S; ++g) prefetch_write(a.gates.at(b, gate_at(S, j0, g, n)));
  prefetch_write(a.out.at(b, j0));
}

// Row b, units [j0, j0 + n), given its G gates' sums m = h_{t-1} U: the cell's epilogue
// (CHARSEQ_EPILOGUE), which stores the gates and its own state and returns h_t (before the mask),
// then the row's outputs.
template <class Step>
CHARSEQ_EPILOGUE void forward_row(const ForwardStep& a, const Step& cell, int b, int j0, int n, const vf* m) {
  const bool masked = a.masked(b);
  vf h = cell(a, b, j0, n, m, masked);
  vf out = h;
  if (masked) {
    h = load_n(a.h_prev.row(b) + j0, n);
    out = a.out_prev ? a.out_prev.load(b, j0, n) : vf{};
  }
  a.out.store(b, j0, out, n);
  if (a.last) {
    store_n(a.h_last.row(b) + j0, h, n);
  } else {
    a.h.store(b, j0, h, n);
    store_n(a.h_next.row(b) + j0, h, n);
    if (a.mat_next) a.mat_next.store(b, j0, h, n);
  }
}

// Rows [r0, r0 + MR) of unit block `block`: m = h_{t-1} U for the G gates in registers, then each
// row's forward_row.
template <int MR, int G, int S, class Step>
void forward_block(const ForwardStep& a, const Step& cell, int r0, int block) {
  const int j0 = block * VL, n = std::min(VL, a.u - j0);
  for (int r = 0; r < MR; ++r) forward_prefetch<G, S>(a, r0 + r, j0, n);
  vf m[MR][G] = {};
  a.panels->product<Pass::kForward, MR, G>(a.mat, r0, block * G, m);
  for (int r = 0; r < MR; ++r) forward_row(a, cell, r0 + r, j0, n, m[r]);
}

#if defined(CHARSEQ_AMX)
// An item's rows [r0, r0 + rows) of unit block `block` on AMX tiles, software-pipelined: while the
// tiles multiply one group of 16 rows, the vector units run the epilogues of the group before, a
// few rows after each step of the product's depth. Done one after the other (forward_block), the
// tiles wait for the epilogues and the epilogues for the tiles' last sums: on a short product (up
// to kPipelinedDepth) that wait is a large part of a group's time. On longer ones the pipeline did
// not pay (measured when written: 128 units 15-20% faster, 256 the same, 512 15-25% slower, the
// epilogues' loads competing with U's panels streaming into the tiles; since the outputs are
// written in bfloat16, 256 and 512 units make the op 3-10% faster pipelined but no training step
// measurably faster: docs/benchmarks.md). All of these were measured without the forward
// prefetches, which GCC had dropped (see CHARSEQ_PREFETCH): worth measuring again on a Xeon, with
// scripts/compare_kernels.py (a change against a revision, in one process).
constexpr int kPipelinedDepth = 4 * kTileDepth;

// The tiles' target, not only the build's: a build for a CPU without AMX (-march=native on an
// AVX-512 EPYC) compiles this too, and the tile functions it inlines need their instruction sets.
template <int G, int S, class Step>
CHARSEQ_AMX_TARGET void forward_tiles(const ForwardStep& a, const Step& cell, int r0, int rows, int block) {
  const int j0 = block * VL, n = std::min(VL, a.u - j0), groups = rows / kTileRows;
  alignas(64) float sums[2][G][kTileRows][16];
  const auto epilogues = [&](int group, int from, int to) {
    for (int r = from; r < to; ++r) {
      vf m[G];
      for (int g = 0; g < G; ++g) m[g] = load(sums[group & 1][g][r]);
      forward_row(a, cell, r0 + group * kTileRows + r, j0, n, m);
    }
  };
  if (groups) configure_tiles<kTileRows>();
  for (int group = 0; group < groups; ++group) {
    for (int r = 0; r < kTileRows; ++r) forward_prefetch<G, S>(a, r0 + group * kTileRows + r, j0, n);
    a.panels->tile_multiply<Pass::kForward, G>(a.mat, r0 + group * kTileRows, block * G, [&](int i, int steps) {
      if (group) epilogues(group - 1, i * kTileRows / steps, (i + 1) * kTileRows / steps);
    });
    tile_store(sums[group & 1]);
  }
  if (groups) epilogues(groups - 1, 0, kTileRows);
  // The rows past the last whole group, as forward_block does them.
  const int done = groups * kTileRows;
  for_row_groups<kTileRows>(rows - done, [&](auto mr, int r) {
    forward_block<decltype(mr)::value, G, S>(a, cell, r0 + done + r, block);
  });
}
#endif

template <class Cell>
void run_forward(OpKernelContext* ctx, Recurrence mode, const ForwardSequence& s, const Cell& cell) {
  constexpr int G = Cell::G, S = Cell::kStored;
  const int B = s.B, T = s.T, u = s.u;
  if (B == 0 || u == 0) return;
  const Panels panels(s.U, u, G, mode, Pass::kForward);
  const size_t su = u;
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < u; j += VL) {
      const int n = std::min(VL, u - j);
      s.h_prev.store(b, j, load_n(s.h0 + b * su + j, n), n);
    }
  // The product reads h_{t-1} from a contiguous buffer: rows T * u apart in h_prev would make its
  // loads hop across pages. Two buffers, written and read on alternate steps.
  std::vector<float> h_buf(2 * B * su);
  std::memcpy(h_buf.data(), s.h0, sizeof(float) * B * su);
  // In bfloat16 the product reads its own copy of h_{t-1}, rounded; the gate arithmetic reads h_buf.
  const bool rounded = mode != Recurrence::kFloat32;
  const OperandBuffers mats(mode, rounded ? B : 0, u);
  if (rounded) mats.fill(0, s.h0, su, u);
  const int blocks = (u + VL - 1) / VL;
  const Shards shards(ctx, blocks), serial(ctx, blocks, true);
  // Step t for rows [first, first + rows), its items on the threads of `on`.
  const auto run_step = [&](int t, const Shards& on, int first, int rows) {
    const bool last = t == T - 1;
    float* h_now = h_buf.data() + (t & 1) * B * su;
    const ForwardStep a{u, last, &panels,
                        rounded ? mats.at(t) : Operand{h_now, nullptr, su},
                        rounded && !last ? mats.at(t + 1) : Operand{},
                        s.xproj.from(t * G * u), s.bias, {h_now, su},
                        t ? s.out.from((t - 1) * u) : IoRows{},
                        s.mask ? s.mask + t : nullptr, static_cast<size_t>(T),
                        s.gates.from(t * S * u), last ? IoRows{} : s.h_prev.from((t + 1) * u),
                        s.out.from(t * u), {s.h_last, su},
                        {h_buf.data() + ((t + 1) & 1) * B * su, su}};
    const auto step = cell.step(t);
    const auto block = [&](auto rows, auto, int r0, int jb) {
      forward_block<decltype(rows)::value, G, S>(a, step, r0, jb);
    };
#if defined(CHARSEQ_AMX)
    if (mode == Recurrence::kTiles && u <= kPipelinedDepth) {
      on.run_chunks<kTileRows, 1>(rows, [&](auto, int r0, int n, int jb) {
        forward_tiles<G, S>(a, step, r0, n, jb);
      }, first);
      return;
    }
    if (mode == Recurrence::kTiles) {
      on.run<kTileRows, 1>(rows, block, first);
      return;
    }
#endif
    on.run<kForwardAccumulators / G, 1>(rows, block, first);
  };
  // A row's steps read only that row's h_{t-1}: see kOwnRowsUnits.
  const auto own_rows = [&](int first, int rows) {
    for (int t = 0; t < T; ++t) run_step(t, serial, first, rows);
  };
  if (u <= kOwnRowsUnits && shards.each_part(B, kOwnRowsMultiple, own_rows)) return;
  for (int t = 0; t < T; ++t) run_step(t, shards, 0, B);
}

// ----------------------------------------------------------------------------------- backward
//
// Walking back from the last step. The one convention for dh: it holds the part of h_t's gradient
// that does not come through m_{t+1} (d_h_last at the start, what passed through masked steps, and
// what the cell's epilogue says reaches h_{t-1} directly: the GRU's dh z, nothing for the LSTM);
// each phase adds d(m)_{t+1} U^T to it.

// What the backward loop reads and writes.
struct BackwardSequence {
  int B = 0, T = 0, u = 0;
  float* U = nullptr;           // [u, G u]
  const float* mask = nullptr;  // [B, T], or null
  IoRows gates;                 // [B, T, kStored u], as the forward pass stored them
  IoRows d_out;                 // [B, T, u]: the gradient of the outputs (typed as they are)
  float* d_h_last = nullptr;    // [B, u]
  float* dh = nullptr;          // [B, u]: d_h_last at the start, d_h0 at the end
  IoRows dm;                    // [B, T, G u]: the gradient of m = h_{t-1} U at each step
  IoRows dx;                    // [B, T, G u]: that of x W + b, or null where it equals dm (LSTM)
  float* dm_sum = nullptr;      // [G u]: dm summed over the rows and steps (a bias's gradient)
  float* dx_sum = nullptr;      // [G u]: the same of dx, or null (LSTM)

  // The sizes and inputs, checked; false (the op's error set) if one does not fit.
  bool read(OpKernelContext* ctx, int G, int stored, const Tensor& kernel, const Tensor& gates_in,
            const Tensor& d_out_in, const Tensor& d_h_last_in, const Tensor& mask_in) {
    if (!check(ctx, gates_in.dims() == 3 && kernel.dims() == 2 && kernel.dim_size(1) == G * kernel.dim_size(0) &&
                        gates_in.dim_size(2) == stored * kernel.dim_size(0),
               "gates must be [B, T, ", stored, "u], recurrent_kernel [u, ", G, "u]"))
      return false;
    B = gates_in.dim_size(0), T = gates_in.dim_size(1), u = kernel.dim_size(0);
    U = data(kernel), gates = io_rows(gates_in, static_cast<size_t>(T) * stored * u),
    d_out = io_rows(d_out_in, static_cast<size_t>(T) * u), d_h_last = data(d_h_last_in);
    return check(ctx, d_out_in.shape() == TensorShape({B, T, u}) && d_h_last_in.shape() == TensorShape({B, u}),
                 "d_outputs must be [B, T, u] and d_h_last [B, u]") &&
           read_mask(ctx, mask_in, B, T, &mask);
  }
};

// One backward phase as the epilogues see it.
struct BackwardStep {
  int u, t;               // the step whose gradients this phase computes (-1: only d_h0)
  const Panels* panels;   // U^T packed for the product
  Operand dm_next;        // d(m) of step t+1 ([G u] per row, zeros where masked) as the product reads
                          // it; none at the last step
  const float* mask;      // mask of step t, or null
  size_t mask_stride;
  IoRows gates;           // [kStored u] of step t, unit block by unit block (gate_at)
  IoRows d_out;           // gradient of step t's output
  float *dh, *carry;      // [B][u]: dh as above; carry, the gradient of the repeated output (masked only)
  IoRows dm, dx;          // [G u] of step t (outputs; dx null where it equals dm)
  Operand dm_copy;        // d(m) of step t again, as the next phase's product reads it; none where
                          // that product reads dm itself
  // The sums of dm and dx so far, [B / sum_rows][G u]: one row per sum_rows batch rows, the rows of
  // one of the threads' items, so that each sum is added to by one thread in a fixed order.
  float *dm_sums, *dx_sums;
  int sum_rows;

  bool masked(int b) const { return mask && mask[b * mask_stride] == 0.0f; }
  // Gate g of d(m) for row b, units from j0: into dm, into the next phase's operand, and its sum.
  void put_dm(int b, int j0, int g, vf v, int n) const {
    dm.store(b, j0 + g * u, v, n);
    if (dm_copy) dm_copy.store(b, j0 + g * u, v, n);
    add(dm_sums, b, j0 + g * u, v, n);
  }
  // The same of d(x W + b), where it differs from d(m) (dx not null).
  void put_dx(int b, int j0, int g, vf v, int n) const {
    dx.store(b, j0 + g * u, v, n);
    add(dx_sums, b, j0 + g * u, v, n);
  }
  void add(float* sums, int b, int j, vf v, int n) const {
    float* s = sums + static_cast<size_t>(b / sum_rows) * width + j;
    store_n(s, load_n(s, n) + v, n);
  }
  size_t width;  // G u
};

// Rows [r0, r0 + MR) of NB consecutive unit blocks from `block`: d(m)_{t+1} U^T in registers, added
// to dh; then per row and block the cell's epilogue, which takes h_t's whole gradient, writes d(m)
// (put_dm) and d(x) of step t (and its own state's gradient) and returns the part of the gradient
// that reaches h_{t-1} directly. A masked step writes zeros.
template <int MR, int NB, int G, int S, bool kDirect, class Step>
void backward_block(const BackwardStep& a, const Step& cell, int r0, int block) {
  const int u = a.u;
  if (a.t >= 0)
    for (int r = 0; r < MR; ++r)
      for (int q = 0; q < NB; ++q) {
        const int b = r0 + r, j0 = (block + q) * VL;
        for (int g = 0; g < S; ++g) prefetch(a.gates.at(b, gate_at(S, j0, g, std::min(VL, u - j0))));
        prefetch(a.d_out.at(b, j0));
        cell.prefetch(b, j0);
        for (int g = 0; g < G; ++g) {
          prefetch_write(a.dm.at(b, g * u + j0));
          if (a.dx) prefetch_write(a.dx.at(b, g * u + j0));
        }
      }
  vf acc[MR][NB] = {};
  if (a.dm_next) a.panels->product<Pass::kBackward, MR, NB>(a.dm_next, r0, block, acc);
  // Where nothing reaches h_{t-1} directly (kDirect false) and no step is masked, dh holds zeros
  // between phases: it is read at the last step (d_h_last) and written at the end (d_h0) only.
  const bool keep = kDirect || a.mask || !a.dm_next || a.t < 0;
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < NB; ++q) {
      const int b = r0 + r, j0 = (block + q) * VL, n = std::min(VL, u - j0);
      const size_t s = static_cast<size_t>(b) * u + j0;
      vf dh = keep ? load_n(a.dh + s, n) + acc[r][q] : acc[r][q];
      if (a.t >= 0) {
        vf d_out = a.d_out.load(b, j0, n);
        if (a.mask) d_out += load_n(a.carry + s, n);
        if (!a.masked(b)) {
          dh = cell(a, b, j0, n, dh + d_out);
          if (a.mask) store_n(a.carry + s, vf{}, n);
        } else {
          store_n(a.carry + s, d_out, n);  // h_t passed h_{t-1} through: dh goes on as it is
          for (int g = 0; g < G; ++g) {
            a.put_dm(b, j0, g, vf{}, n);
            if (a.dx) a.dx.store(b, j0 + g * u, vf{}, n);
          }
        }
      }
      if (keep) store_n(a.dh + s, dh, n);
    }
}

template <class Cell>
void run_backward(OpKernelContext* ctx, Recurrence mode, const BackwardSequence& s, const Cell& cell) {
  constexpr int G = Cell::G, S = Cell::kStored;
  const int B = s.B, T = s.T, u = s.u;
  std::copy_n(s.d_h_last, static_cast<size_t>(B) * u, s.dh);
  std::fill_n(s.dm_sum, G * u, 0.0f);
  if (s.dx) std::fill_n(s.dx_sum, G * u, 0.0f);
  if (B == 0 || u == 0 || T == 0) return;
  const Panels panels(s.U, u, G, mode, Pass::kBackward);
  std::vector<float> carry(s.mask ? static_cast<size_t>(B) * u : 0, 0.0f);
  // The next phase's product reads d(m) of step t where this op writes it, in the gates' gradient:
  // storing a copy of its own, in a buffer that both threads had read the step before, took 10-20%
  // of the op's time (AMX tiles, 128 and 512 units). The copy stays where the product needs
  // something else: rows padded to its depth multiple, or the emulation's rounded values.
  const bool direct = mode != Recurrence::kEmulated && (G * u) % depth_multiple(mode) == 0 &&
                      s.dm.bf16 == bf16_operand(mode);
  const OperandBuffers dm_buf(mode, direct ? 0 : B, G * u);  // alternate steps, as h_buf forward
  const auto dm_operand = [&](int t) {
    if (!direct) return dm_buf.at(t);
    const IoRows rows = s.dm.from(static_cast<size_t>(t) * G * u);
    Operand o;
    if (rows.bf16) {
      o.h = static_cast<uint16_t*>(rows.ptr);
    } else {
      o.f = static_cast<float*>(rows.ptr);
    }
    o.stride = rows.stride;
    return o;
  };
  const size_t width = static_cast<size_t>(G) * u;
  const int blocks = (u + VL - 1) / VL;
  const Shards shards(ctx, blocks), serial(ctx, blocks, true);
  // The path's one choice of batch rows (MR) and unit blocks (NB) per register block splits the
  // work over the threads (Shards::run) and the biases' gradients: summed per item's rows, so that
  // each sum is added to by one thread in a fixed order, then totalled.
  const auto run_path = [&](auto rows, auto blocks) {
    constexpr int MR = decltype(rows)::value, NB = decltype(blocks)::value;
    const int sum_rows = Shards::chunk_rows<MR>();
    const size_t sum_groups = (B + sum_rows - 1) / sum_rows;
    std::vector<float> dm_sums(sum_groups * width, 0.0f), dx_sums(s.dx ? sum_groups * width : 0, 0.0f);
    // Every step for rows [first, first + count), each step's items on the threads of `on`.
    const auto run_steps = [&](const Shards& on, int first, int count) {
      for (int t = T - 1; t >= -1; --t) {
        const bool here = t >= 0, has_next = t + 1 < T;
        const BackwardStep a{u, t, &panels, has_next ? dm_operand(t + 1) : Operand{},
                             here && s.mask ? s.mask + t : nullptr, static_cast<size_t>(T),
                             here ? s.gates.from(t * S * u) : IoRows{},
                             here ? s.d_out.from(t * u) : IoRows{},
                             s.dh, carry.data(),
                             here ? s.dm.from(t * G * u) : IoRows{},
                             here ? s.dx.from(t * G * u) : IoRows{},
                             here && !direct ? dm_buf.at(t) : Operand{},
                             dm_sums.data(), dx_sums.data(), sum_rows, width};
        const auto step = cell.step(t);
        on.run<MR, NB>(count, [&](auto group_rows, auto group_blocks, int r0, int jb) {
          backward_block<decltype(group_rows)::value, decltype(group_blocks)::value, G, S, Cell::kDirect>(
              a, step, r0, jb);
        }, first);
      }
    };
    // As forward (kOwnRowsUnits), but in whole items' rows, so that each of the biases' sums is
    // still added to by one thread.
    const auto own_rows = [&](int first, int count) { run_steps(serial, first, count); };
    if (!(u <= kOwnRowsUnits && shards.each_part(B, sum_rows, own_rows))) run_steps(shards, 0, B);
    const auto total = [&](const std::vector<float>& sums, float* out) {
      for (size_t r = 0; r < sum_groups; ++r)
        for (size_t j = 0; j < width; ++j) out[j] += sums[r * width + j];
    };
    total(dm_sums, s.dm_sum);
    if (s.dx) total(dx_sums, s.dx_sum);
  };
#if defined(CHARSEQ_AMX)
  if (mode == Recurrence::kTiles) {
    run_path(std::integral_constant<int, kTileRows>{}, std::integral_constant<int, kTileBlocks>{});
    return;
  }
#endif
  run_path(std::integral_constant<int, kBackwardRows>{}, std::integral_constant<int, 2>{});
}

}  // namespace charseq
