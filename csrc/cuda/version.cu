// CUDA driver and runtime versions, for ltu_fast.backends.cuda.availability(): the runtime is
// linked statically, so a driver older than it fails the first launch; Python checks this first.
#include <cuda_runtime.h>

#include "launch.h"

namespace ltu_fast {
namespace cuda {

void versions(int* driver, int* runtime) {
  *driver = 0;   // stays 0 when no driver is installed
  *runtime = 0;
  cudaDriverGetVersion(driver);
  cudaRuntimeGetVersion(runtime);
}

}  // namespace cuda
}  // namespace ltu_fast
