// pybind11 module ltu_fast._C_cuda: keyword-argument entry points over raw device addresses.
#include <pybind11/pybind11.h>

#include "launch.h"
#include "ltu_fast/export.h"
#include "solve.h"

namespace py = pybind11;
using namespace ltu_fast::cuda;

namespace {

template <class Args>
void fill_rows(Args& a, uintptr_t rows, int row_dtype, int k, int64_t row_stride, uintptr_t chunks,
               int64_t num_chunks, bool vec, int device, uintptr_t stream) {
  a.rows = rows; a.row_dtype = row_dtype; a.k = k; a.row_stride = row_stride; a.chunks = chunks;
  a.num_chunks = num_chunks; a.vec = vec; a.device = device; a.stream = stream;
}

}  // namespace

PYBIND11_MODULE(_C_cuda, m) {
  m.doc() = "ltu_fast CUDA kernels (raw pointers from torch; see ltu_fast/backends/cuda.py)";
  ltu_fast::export_codes(m);
  m.def("gram", [](uintptr_t rows, int row_dtype, int k, int64_t row_stride, uintptr_t chunks, int64_t num_chunks,
                   bool vec, uintptr_t seg_ptr, uintptr_t seg_chunks, int64_t num_segments, uintptr_t partial,
                   uintptr_t stats, int device, uintptr_t stream) {
    GramArgs a;
    fill_rows(a, rows, row_dtype, k, row_stride, chunks, num_chunks, vec, device, stream);
    a.seg_ptr = seg_ptr; a.seg_chunks = seg_chunks; a.num_segments = num_segments;
    a.partial = partial; a.stats = stats;
    gram(a);
  }, py::arg("rows"), py::arg("row_dtype"), py::arg("k"), py::arg("row_stride"), py::arg("chunks"),
     py::arg("num_chunks"), py::arg("vec"), py::arg("seg_ptr"), py::arg("seg_chunks"), py::arg("num_segments"),
     py::arg("partial"), py::arg("stats"), py::arg("device"), py::arg("stream"));
  m.def("combine", [](uintptr_t rows, int row_dtype, int k, int64_t row_stride, uintptr_t chunks,
                      int64_t num_chunks, bool vec, uintptr_t beta, uintptr_t out, int device, uintptr_t stream) {
    CombineArgs a;
    fill_rows(a, rows, row_dtype, k, row_stride, chunks, num_chunks, vec, device, stream);
    a.beta = beta; a.out = out;
    combine(a);
  }, py::arg("rows"), py::arg("row_dtype"), py::arg("k"), py::arg("row_stride"), py::arg("chunks"),
     py::arg("num_chunks"), py::arg("vec"), py::arg("beta"), py::arg("out"), py::arg("device"), py::arg("stream"));
  m.def("apply", [](int rule, uintptr_t rows, int row_dtype, int k, int64_t row_stride, uintptr_t chunks,
                    int64_t num_chunks, bool vec, uintptr_t beta, uintptr_t param, uintptr_t buffer0,
                    uintptr_t buffer1, uintptr_t buffer2, uintptr_t table, uintptr_t found_inf, int device,
                    uintptr_t stream) {
    ApplyArgs a;
    fill_rows(a, rows, row_dtype, k, row_stride, chunks, num_chunks, vec, device, stream);
    a.rule = rule; a.beta = beta; a.param = param; a.buffers[0] = buffer0; a.buffers[1] = buffer1;
    a.buffers[2] = buffer2; a.table = table; a.found_inf = found_inf;
    apply(a);
  }, py::arg("rule"), py::arg("rows"), py::arg("row_dtype"), py::arg("k"), py::arg("row_stride"), py::arg("chunks"),
     py::arg("num_chunks"), py::arg("vec"), py::arg("beta"), py::arg("param"), py::arg("buffer0"),
     py::arg("buffer1"), py::arg("buffer2"), py::arg("table"), py::arg("found_inf"), py::arg("device"),
     py::arg("stream"));
  m.def("axpy", [](uintptr_t acc, int acc_dtype, uintptr_t x, int x_dtype, int64_t n, uintptr_t alpha_ptr,
                   float alpha, int device, uintptr_t stream) {
    AxpyArgs a;
    a.acc = acc; a.acc_dtype = acc_dtype; a.x = x; a.x_dtype = x_dtype; a.n = n; a.alpha_ptr = alpha_ptr;
    a.alpha = alpha; a.device = device; a.stream = stream;
    axpy(a);
  }, py::arg("acc"), py::arg("acc_dtype"), py::arg("x"), py::arg("x_dtype"), py::arg("n"), py::arg("alpha_ptr"),
     py::arg("alpha"), py::arg("device"), py::arg("stream"));
  m.def("solve", [](uintptr_t gram, int64_t num_segments, int k, int kind, const std::vector<int64_t>& ints,
                    const std::vector<double>& floats, uintptr_t counter, uintptr_t aggregator_state,
                    int64_t state_width, uintptr_t weights, uintptr_t grad_scale, bool unscale_gram,
                    uintptr_t found_inf, uintptr_t beta,
                    uintptr_t flag, uintptr_t skipped, int rule, uintptr_t tensors, int64_t num_tensors,
                    uintptr_t group_f32, uintptr_t group_f64, uintptr_t state, uintptr_t touched, uintptr_t rows,
                    int device, uintptr_t stream) {
    SolveArgs a;
    a.gram = gram; a.num_segments = num_segments;
    a.spec = ltu_fast::make_spec("ltu_fast._C_cuda", kind, k, ints, floats);
    a.counter = counter; a.aggregator_state = aggregator_state; a.state_width = state_width;
    a.weights = weights; a.grad_scale = grad_scale; a.unscale_gram = unscale_gram; a.found_inf_in = found_inf;
    a.beta = beta; a.flag = flag; a.skipped = skipped; a.rule = rule; a.tensors = tensors;
    a.num_tensors = num_tensors; a.group_f32 = group_f32; a.group_f64 = group_f64; a.state = state;
    a.touched = touched; a.rows = rows; a.device = device; a.stream = stream;
    solve(a);
  }, py::arg("gram"), py::arg("num_segments"), py::arg("k"), py::arg("kind"), py::arg("ints"), py::arg("floats"),
     py::arg("counter"), py::arg("aggregator_state"), py::arg("state_width"), py::arg("weights"),
     py::arg("grad_scale"), py::arg("unscale_gram"), py::arg("found_inf"), py::arg("beta"), py::arg("flag"),
     py::arg("skipped"), py::arg("rule"), py::arg("tensors"), py::arg("num_tensors"), py::arg("group_f32"),
     py::arg("group_f64"), py::arg("state"), py::arg("touched"), py::arg("rows"), py::arg("device"),
     py::arg("stream"));
  m.def("versions", [] {
    int driver = 0, runtime = 0;
    versions(&driver, &runtime);
    return py::make_tuple(driver, runtime);
  }, "(driver, runtime) CUDA versions as 1000 * major + 10 * minor; driver 0 when none is installed");
}
