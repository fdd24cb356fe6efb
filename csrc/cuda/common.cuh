// Shared pieces of the CUDA backend: dtype conversion, 16-byte packs, chunk metadata, error checks.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ltu_fast/codes.h"

namespace ltu_fast {
namespace cuda {

constexpr int kThreads = 512;        // threads per block of the per-chunk kernels
constexpr int kReduceThreads = 256;  // threads per block of the per-segment reduction

// One row of the int64 [C, kChunkColumns] chunk table built by the Python wrapper (once per plan).
struct ChunkMeta {
  int64_t start, len, segment, group;
};
static_assert(sizeof(ChunkMeta) == kChunkColumns * sizeof(int64_t) && offsetof(ChunkMeta, start) == 8 * kChunkStart &&
                  offsetof(ChunkMeta, len) == 8 * kChunkLength && offsetof(ChunkMeta, segment) == 8 * kChunkSegment &&
                  offsetof(ChunkMeta, group) == 8 * kChunkGroup,
              "ChunkMeta must be one row of the chunk table (ltu_fast/codes.h)");

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// Elements of T per 16-byte load.
template <typename T> constexpr int kVec = 16 / sizeof(T);

// N elements moved as one (or, above 16 bytes, several) vector access.
template <typename T, int N>
struct alignas(sizeof(T) * N > 16 ? 16 : sizeof(T) * N) Pack {
  T v[N];
};

template <typename T, int N>
__device__ __forceinline__ void load_pack(const T* p, float (&out)[N]) {
  const Pack<T, N> pk = *reinterpret_cast<const Pack<T, N>*>(p);
#pragma unroll
  for (int i = 0; i < N; ++i) out[i] = to_float(pk.v[i]);
}

template <typename T, int N>
__device__ __forceinline__ void store_pack(T* p, const float (&in)[N]) {
  Pack<T, N> pk;
#pragma unroll
  for (int i = 0; i < N; ++i) pk.v[i] = from_float<T>(in[i]);
  *reinterpret_cast<Pack<T, N>*>(p) = pk;
}

// Sums each of M per-thread values over the block in a fixed order (deterministic); the totals
// are valid in thread 0. `smem` holds THREADS / 32 * M floats.
template <int THREADS, int M>
__device__ __forceinline__ void block_sum(float (&v)[M], float* smem) {
  constexpr int kWarps = THREADS / 32;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int off = 16; off > 0; off /= 2) v[m] += __shfl_xor_sync(0xffffffffu, v[m], off);
    if (lane == 0) smem[warp * M + m] = v[m];
  }
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      v[m] = lane < kWarps ? smem[lane * M + m] : 0.0f;
#pragma unroll
      for (int off = 16; off > 0; off /= 2) v[m] += __shfl_xor_sync(0xffffffffu, v[m], off);
    }
  }
}

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("ltu_fast._C_cuda: ") + what + ": " + cudaGetErrorString(err));
  }
}

// Makes `device` current for the launch and restores the caller's device afterwards.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() {
    int current = previous_;
    cudaGetDevice(&current);
    if (current != previous_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

template <typename T> struct TypeTag { using type = T; };

// Calls f(TypeTag<T>{}) for the row dtype code.
template <class F>
void dispatch_dtype(int code, F&& f) {
  switch (code) {
    case kFloat32: f(TypeTag<float>{}); break;
    case kFloat16: f(TypeTag<__half>{}); break;
    case kBFloat16: f(TypeTag<__nv_bfloat16>{}); break;
    default: throw std::invalid_argument("ltu_fast._C_cuda: unsupported dtype code " + std::to_string(code));
  }
}

// Calls f(std::integral_constant<int, K>{}) for K in 1..4.
template <class F>
void dispatch_k(int k, F&& f) {
  switch (k) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    default: throw std::invalid_argument("ltu_fast._C_cuda: K must be 1..4, got " + std::to_string(k));
  }
}

}  // namespace cuda
}  // namespace ltu_fast
