// Adam's update of all of a model's variables as one op, gradient-norm clipping included.
//
// TensorFlow's ResourceApplyAdam updates one variable per op, and Keras clips by the global norm
// with a dozen more ops (each gradient's sum of squares, their sum, the scale, each gradient
// scaled, each a pass over memory). Here one op reads every gradient twice (its norm, then the
// update) and each variable, m and v once. On the MNIST-row classifier's 100k weights that makes
// the step's optimizer part 0.2-0.4 ms shorter; the update itself is bound by memory either way.
//
// The arithmetic is Keras' (keras.optimizers.Adam with global_clipnorm): the gradients scaled by
// clip_norm * min(1 / norm, 1 / clip_norm), NaN where the norm is not finite; then
//   alpha = lr sqrt(1 - beta2^t) / (1 - beta1^t),  m += (g - m)(1 - beta1),  v += (g^2 - v)(1 - beta2),
//   var -= alpha m / (sqrt(v) + epsilon).
// The norm's sums are in double (Keras': float32 per variable), so the two agree to float32's rounding.

#include <cmath>

#include "common.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/util/work_sharder.h"

namespace charseq {
namespace {

using tensorflow::ResourceHandle;
using tensorflow::Var;

// Sum of squares of n floats, in float lanes of 16 folded into a double every block (the lanes'
// float sums stay short, so their rounding stays at float32's over a block).
double sum_of_squares(const float* g, int64_t n) {
  constexpr int64_t kBlock = 4096, kLanes = 16;
  double total = 0.0;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = std::min(n, start + kBlock);
    float lanes[kLanes] = {};
    int64_t i = start;
    for (; i + kLanes <= end; i += kLanes)
      for (int k = 0; k < kLanes; ++k) lanes[k] += g[i + k] * g[i + k];
    for (; i < end; ++i) lanes[0] += g[i] * g[i];
    for (int k = 0; k < kLanes; ++k) total += lanes[k];
  }
  return total;
}

struct Update {
  float scale, alpha, beta1, beta2, epsilon;

  void operator()(const float* __restrict__ grad, float* __restrict__ var, float* __restrict__ m,
                  float* __restrict__ v, int64_t begin, int64_t end) const {
    const float keep1 = 1.0f - beta1, keep2 = 1.0f - beta2;
    for (int64_t i = begin; i < end; ++i) {
      const float g = grad[i] * scale;
      m[i] += (g - m[i]) * keep1;
      v[i] += (g * g - v[i]) * keep2;
      var[i] -= (m[i] * alpha) / (std::sqrt(v[i]) + epsilon);
    }
  }
};

class AdamOp : public OpKernel {
 public:
  explicit AdamOp(OpKernelConstruction* ctx) : OpKernel(ctx) { OP_REQUIRES_OK(ctx, ctx->GetAttr("N", &n_)); }

  void Compute(OpKernelContext* ctx) override {
    const int grads = 3 * n_;  // inputs: vars, ms, vs, grads, then the scalars
    float scalars[7];          // lr, beta1_power, beta2_power, beta1, beta2, epsilon, clip_norm
    for (int k = 0; k < 7; ++k) {
      const Tensor& t = ctx->input(grads + n_ + k);
      OP_REQUIRES(ctx, t.NumElements() == 1, tensorflow::errors::InvalidArgument("Adam's scalars must be scalars"));
      scalars[k] = t.flat<float>()(0);
    }
    const auto [lr, beta1_power, beta2_power, beta1, beta2, epsilon, clip_norm] = scalars;

    float scale = 1.0f;
    if (clip_norm > 0.0f) {
      double squares = 0.0;
      for (int i = 0; i < n_; ++i) {
        const Tensor& g = ctx->input(grads + i);
        squares += sum_of_squares(g.flat<float>().data(), g.NumElements());
      }
      const float norm = static_cast<float>(std::sqrt(squares));
      scale = clip_norm * std::min(1.0f / norm, 1.0f / clip_norm) + (norm - norm);  // NaN unless finite
    }
    const Update update{scale, lr * std::sqrt(1.0f - beta2_power) / (1.0f - beta1_power), beta1, beta2, epsilon};

    const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    for (int i = 0; i < n_; ++i) {
      const Tensor& grad = ctx->input(grads + i);
      tensorflow::core::RefCountPtr<Var> var, m, v;
      OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, i), &var));
      OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, n_ + i), &m));
      OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 2 * n_ + i), &v));
      // One variable's three locks at a time, always in this order (other ops take one at a time).
      tensorflow::mutex_lock lock_var(*var->mu()), lock_m(*m->mu()), lock_v(*v->mu());
      Tensor* tensors[3] = {var->tensor(), m->tensor(), v->tensor()};
      Var* owners[3] = {var.get(), m.get(), v.get()};
      for (int k = 0; k < 3; ++k) {
        OP_REQUIRES(ctx, owners[k]->is_initialized && tensors[k]->dtype() == tensorflow::DT_FLOAT &&
                             tensors[k]->shape() == grad.shape(),
                    tensorflow::errors::InvalidArgument("Adam: variable ", i, ", its m and v must be initialized "
                                                        "float32 tensors of its gradient's shape ",
                                                        grad.shape().DebugString()));
        // A read of the variable may still hold its buffer: update a copy then, as TensorFlow's own
        // training ops do, so that the read keeps the value it read.
        if (owners[k]->copy_on_read_mode.load() || !tensors[k]->RefCountIsOne()) {
          Tensor copy;
          OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_FLOAT, tensors[k]->shape(), &copy));
          std::memcpy(copy.flat<float>().data(), tensors[k]->flat<float>().data(), tensors[k]->TotalBytes());
          *tensors[k] = copy;
        }
      }
      const float* g = grad.flat<float>().data();
      float *w = tensors[0]->flat<float>().data(), *mp = tensors[1]->flat<float>().data(),
            *vp = tensors[2]->flat<float>().data();
      // About 20 cycles an element: Shard splits a variable over the threads only where it pays.
      tensorflow::Shard(workers->num_threads, workers->workers, grad.NumElements(), 20,
                        [&](int64_t begin, int64_t end) { update(g, w, mp, vp, begin, end); });
    }
  }

 private:
  int n_ = 0;
};

REGISTER_OP("CharseqAdam")
    .Input("vars: N * resource")
    .Input("ms: N * resource")
    .Input("vs: N * resource")
    .Input("grads: N * float")
    .Input("lr: float")
    .Input("beta1_power: float")
    .Input("beta2_power: float")
    .Input("beta1: float")
    .Input("beta2: float")
    .Input("epsilon: float")
    .Input("clip_norm: float")
    .Attr("N: int >= 1")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::NoOutputs);

REGISTER_KERNEL_BUILDER(Name("CharseqAdam").Device(tensorflow::DEVICE_CPU), AdamOp);

}  // namespace
}  // namespace charseq
