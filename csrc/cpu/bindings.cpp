// pybind11 module ltu_fast._C: raw-pointer entry points for ltu_fast/backends/cpu.py.
//
// Pointers arrive as integers (torch `data_ptr()`), so the module never links libtorch and one
// build works with any torch version. The Python wrapper validates every tensor before calling;
// the GIL is released while the kernels run.
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "coefficients.h"
#include "kernels.h"
#include "ltu_fast/export.h"

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
  ltu_fast::export_codes(m);

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
      "apply",
      [](int rule, int64_t rows, int dtype, int64_t k, int64_t stride, int64_t chunks, int64_t n_chunks, int64_t beta,
         int64_t param, int64_t buffer0, int64_t buffer1, int64_t buffer2, int64_t table, int64_t found_inf,
         int threads) {
        float* const buffers[ltu_fast::kMaxBuffers] = {ptr<float>(buffer0), ptr<float>(buffer1), ptr<float>(buffer2)};
        apply(rule, make_rows(rows, dtype, k, stride), Chunks{ptr<const int64_t>(chunks), n_chunks},
              ptr<const float>(beta), ptr<float>(param), buffers, ptr<const float>(table), ptr<const float>(found_inf),
              threads);
      },
      "the fused update of rule `rule`; a buffer address 0 means the buffer is absent", py::arg("rule"),
      py::arg("rows"), py::arg("dtype"), py::arg("k"), py::arg("stride"), py::arg("chunks"), py::arg("n_chunks"),
      py::arg("beta"), py::arg("param"), py::arg("buffer0"), py::arg("buffer1"), py::arg("buffer2"), py::arg("table"),
      py::arg("found_inf"), py::arg("threads"), py::call_guard<py::gil_scoped_release>());

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
      [](int64_t gram, int64_t num_segments, int64_t k, int kind, const std::vector<int64_t>& ints,
         const std::vector<double>& floats, int64_t counter, int64_t aggregator_state, int64_t state_width,
         int64_t weights, int64_t grad_scale, bool unscale_gram, int64_t found_inf_in, int64_t beta, int64_t flag, int64_t skipped,
         int rule, int64_t tensors, int64_t num_tensors, int64_t group_f32, int64_t group_f64, int64_t state,
         int64_t touched, int64_t rows) {
        if (rule >= 0 && !ltu_fast::known_rule(rule))
          throw std::invalid_argument("ltu_fast._C: unknown update rule code " + std::to_string(rule));
        const ltu_fast::SolveSpec spec = ltu_fast::make_spec("ltu_fast._C", kind, k, ints, floats);
        py::gil_scoped_release release;
        solve(SolveArgs{ptr<const float>(gram), num_segments, spec, ptr<int64_t>(counter),
                        ptr<double>(aggregator_state), state_width, ptr<const float>(weights),
                        ptr<const float>(grad_scale), unscale_gram, ptr<const float>(found_inf_in), ptr<float>(beta),
                        ptr<float>(flag), ptr<int64_t>(skipped),
                        ltu_fast::PrepareArgs{rule, ptr<const int64_t>(tensors), num_tensors,
                                              ptr<const float>(group_f32), ptr<const double>(group_f64),
                                              ptr<float>(state), ptr<const float>(touched), ptr<float>(rows)}});
      },
      "Gram [L, k, k] -> beta [L, k] and the skip flag, then rule `rule`'s per-tensor rows (rule < 0: none); "
      "0 = null pointer",
      py::arg("gram"), py::arg("num_segments"), py::arg("k"), py::arg("kind"), py::arg("ints"), py::arg("floats"),
      py::arg("counter"), py::arg("aggregator_state"), py::arg("state_width"), py::arg("weights"),
      py::arg("grad_scale"), py::arg("unscale_gram"), py::arg("found_inf"), py::arg("beta"), py::arg("flag"),
      py::arg("skipped"), py::arg("rule"), py::arg("tensors"), py::arg("num_tensors"), py::arg("group_f32"),
      py::arg("group_f64"), py::arg("state"), py::arg("touched"), py::arg("rows"));
}
