// pybind11 module ltu_fast._C: raw-pointer entry points for ltu_fast/backends/cpu.py.
//
// Pointers arrive as integers (torch `data_ptr()`), so the module never links libtorch and one
// build works with any torch version. The Python wrapper validates every tensor before calling;
// the GIL is released while the kernels run.
#include <pybind11/pybind11.h>

#include "coefficients.h"
#include "adamw.h"
#include "convert.h"
#include "kernels.h"

namespace py = pybind11;
using namespace ltu_fast::cpu;

namespace {

template <class T>
T* ptr(int64_t address) {
  return reinterpret_cast<T*>(static_cast<uintptr_t>(address));
}

Rows make_rows(int64_t data, int dtype, int64_t k, int64_t stride) { return Rows{ptr<const void>(data), dtype, k, stride}; }

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "ltu_fast C++/OpenMP CPU kernels (raw pointers; see ltu_fast/backends/cpu.py)";
  m.attr("DTYPE_FLOAT32") = int(kFloat32);
  m.attr("DTYPE_BFLOAT16") = int(kBFloat16);
  m.attr("DTYPE_FLOAT16") = int(kFloat16);
  m.attr("CHUNK_COLUMNS") = int(kChunkColumns);

  m.def(
      "gram",
      [](int64_t rows, int dtype, int64_t k, int64_t stride, int64_t chunks, int64_t n_chunks, int64_t seg_ptr,
         int64_t seg_chunks, int64_t num_segments, int64_t partials, int64_t stats, int threads) {
        gram(make_rows(rows, dtype, k, stride), Chunks{ptr<const int64_t>(chunks), n_chunks},
             ptr<const int64_t>(seg_ptr), ptr<const int64_t>(seg_chunks), num_segments, ptr<double>(partials),
             ptr<float>(stats), threads);
      },
      py::arg("rows"), py::arg("dtype"), py::arg("k"), py::arg("stride"), py::arg("chunks"), py::arg("n_chunks"),
      py::arg("segment_ptr"), py::arg("segment_chunks"), py::arg("num_segments"), py::arg("partials"),
      py::arg("stats"), py::arg("threads"), py::call_guard<py::gil_scoped_release>());

  m.def(
      "combine",
      [](int64_t rows, int dtype, int64_t k, int64_t stride, int64_t chunks, int64_t n_chunks, int64_t beta,
         int64_t out, int threads) {
        combine(make_rows(rows, dtype, k, stride), Chunks{ptr<const int64_t>(chunks), n_chunks}, ptr<const float>(beta),
                ptr<void>(out), threads);
      },
      py::arg("rows"), py::arg("dtype"), py::arg("k"), py::arg("stride"), py::arg("chunks"), py::arg("n_chunks"),
      py::arg("beta"), py::arg("out"), py::arg("threads"), py::call_guard<py::gil_scoped_release>());

  m.def(
      "sgd_apply",
      [](int64_t rows, int dtype, int64_t k, int64_t stride, int64_t chunks, int64_t n_chunks, int64_t beta,
         int64_t param, int64_t momentum, int64_t hyper, int64_t ready, int64_t found_inf, int threads) {
        sgd_apply(make_rows(rows, dtype, k, stride), Chunks{ptr<const int64_t>(chunks), n_chunks},
                  ptr<const float>(beta), ptr<float>(param), ptr<float>(momentum), ptr<const float>(hyper),
                  ptr<const float>(ready), ptr<const float>(found_inf), threads);
      },
      "momentum = 0 means no momentum buffer", py::arg("rows"), py::arg("dtype"), py::arg("k"), py::arg("stride"),
      py::arg("chunks"), py::arg("n_chunks"), py::arg("beta"), py::arg("param"), py::arg("momentum"),
      py::arg("hyper"), py::arg("ready"), py::arg("found_inf"), py::arg("threads"),
      py::call_guard<py::gil_scoped_release>());

  m.def(
      "adamw_apply",
      [](int64_t rows, int dtype, int64_t k, int64_t stride, int64_t chunks, int64_t n_chunks, int64_t beta,
         int64_t param, int64_t exp_avg, int64_t exp_avg_sq, int64_t max_exp_avg_sq, int64_t hyper,
         int64_t found_inf, int threads) {
        adamw_apply(make_rows(rows, dtype, k, stride), Chunks{ptr<const int64_t>(chunks), n_chunks},
                    ptr<const float>(beta), ptr<float>(param), ptr<float>(exp_avg), ptr<float>(exp_avg_sq),
                    ptr<float>(max_exp_avg_sq), ptr<const float>(hyper), ptr<const float>(found_inf), threads);
      },
      "max_exp_avg_sq = 0 means no amsgrad buffer", py::arg("rows"), py::arg("dtype"), py::arg("k"),
      py::arg("stride"), py::arg("chunks"), py::arg("n_chunks"), py::arg("beta"), py::arg("param"),
      py::arg("exp_avg"), py::arg("exp_avg_sq"), py::arg("max_exp_avg_sq"), py::arg("hyper"), py::arg("found_inf"),
      py::arg("threads"), py::call_guard<py::gil_scoped_release>());

  m.def(
      "axpy",
      [](int64_t acc, int64_t x, int dtype, int64_t n, int64_t alpha_tensor, float alpha, int threads) {
        const float a = alpha_tensor ? *ptr<const float>(alpha_tensor) : alpha;
        axpy(ptr<float>(acc), ptr<const void>(x), dtype, n, a, threads);
      },
      "alpha_tensor: address of a float32 scalar (read here, no host sync in Python), or 0 to use alpha",
      py::arg("acc"), py::arg("x"), py::arg("dtype"), py::arg("n"), py::arg("alpha_tensor"), py::arg("alpha"),
      py::arg("threads"), py::call_guard<py::gil_scoped_release>());

  m.def(
      "solve",
      [](int64_t gram, int64_t num_segments, int64_t k, int kind, int protect, int iterations, bool random_order,
         int64_t seed, int64_t counter, int64_t weights, int64_t grad_scale, int64_t found_inf_in, int64_t beta,
         int64_t flag, int64_t hyper, int64_t num_groups, int64_t ready, int64_t ready_before, int64_t skipped,
         int64_t tensors, int64_t num_tensors, int64_t tensor_hyper) {
        solve(SolveArgs{ptr<const float>(gram), num_segments, k, kind, protect, iterations, random_order,
                        static_cast<uint32_t>(seed & 0xffffffff), ptr<int64_t>(counter), ptr<const float>(weights),
                        ptr<const float>(grad_scale), ptr<const float>(found_inf_in), ptr<float>(beta),
                        ptr<float>(flag), ptr<const float>(hyper), num_groups, ptr<float>(ready),
                        ptr<float>(ready_before), ptr<int64_t>(skipped), ptr<const int64_t>(tensors), num_tensors,
                        ptr<float>(tensor_hyper)});
      },
      "Gram [L, k, k] -> beta [L, k] and the skip flag, plus optimizer bookkeeping; 0 = null pointer",
      py::arg("gram"), py::arg("num_segments"), py::arg("k"), py::arg("kind"), py::arg("protect"),
      py::arg("iterations"), py::arg("random_order"), py::arg("seed"), py::arg("counter"), py::arg("weights"),
      py::arg("grad_scale"), py::arg("found_inf"), py::arg("beta"), py::arg("flag"), py::arg("hyper"),
      py::arg("num_groups"), py::arg("ready"), py::arg("ready_before"), py::arg("skipped"),
      py::arg("tensors") = 0, py::arg("num_tensors") = 0, py::arg("tensor_hyper") = 0,
      py::call_guard<py::gil_scoped_release>());
}
