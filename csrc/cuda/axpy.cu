// acc += alpha * x over a flat buffer (meta-gradient accumulation); fp32 arithmetic.
#include <algorithm>

#include "common.cuh"
#include "launch.h"

namespace ltu_fast {
namespace cuda {
namespace {

constexpr int kAxpyVec = 4;

template <typename A, typename X>
__global__ void __launch_bounds__(kThreads)
axpy_kernel(A* __restrict__ acc, const X* __restrict__ x, int64_t n, const float* __restrict__ alpha_ptr,
            float alpha, bool vec) {
  const float a = alpha_ptr != nullptr ? *alpha_ptr : alpha;
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  const int64_t head = vec ? n / kAxpyVec * kAxpyVec : 0;
  for (int64_t i = (int64_t(blockIdx.x) * kThreads + threadIdx.x) * kAxpyVec; i < head; i += stride * kAxpyVec) {
    float s[kAxpyVec], v[kAxpyVec];
    load_pack<A, kAxpyVec>(acc + i, s);
    load_pack<X, kAxpyVec>(x + i, v);
#pragma unroll
    for (int j = 0; j < kAxpyVec; ++j) s[j] = fmaf(a, v[j], s[j]);
    store_pack<A, kAxpyVec>(acc + i, s);
  }
  for (int64_t i = head + int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride) {
    acc[i] = from_float<A>(fmaf(a, to_float(x[i]), to_float(acc[i])));
  }
}

}  // namespace

void axpy(const AxpyArgs& a) {
  DeviceGuard guard(a.device);
  if (a.n == 0) return;
  int sms = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, a.device), "cudaDeviceGetAttribute");
  const int64_t needed = (a.n + int64_t(kThreads) * kAxpyVec - 1) / (int64_t(kThreads) * kAxpyVec);
  const unsigned blocks = unsigned(std::min<int64_t>(needed, int64_t(sms) * 4));
  auto stream = reinterpret_cast<cudaStream_t>(a.stream);
  const bool vec = a.acc % 16 == 0 && a.x % 16 == 0;
  dispatch_dtype(a.acc_dtype, [&](auto acc_tag) {
    using A = typename decltype(acc_tag)::type;
    dispatch_dtype(a.x_dtype, [&](auto x_tag) {
      using X = typename decltype(x_tag)::type;
      axpy_kernel<A, X><<<blocks, kThreads, 0, stream>>>(
          reinterpret_cast<A*>(a.acc), reinterpret_cast<const X*>(a.x), a.n,
          reinterpret_cast<const float*>(a.alpha_ptr), a.alpha, vec);
      check(cudaGetLastError(), "axpy launch");
    });
  });
}

}  // namespace cuda
}  // namespace ltu_fast
