// The one translation unit that knows Python: converts arrays, checks shapes and dtypes at
// the boundary (bad input -> ValueError), and releases the GIL around pure C++ work.
#include <pybind11/pybind11.h>

#include <string>
#include <thread>

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "latentforge C++ core: counter-based noise, reparameterization, DDPM/DDIM loop";
  m.def(
      "build_info",
      []() {
        py::dict info;
        info["compiler"] = std::string(__VERSION__);
        info["cplusplus"] = static_cast<long>(__cplusplus);
        info["hardware_threads"] = std::thread::hardware_concurrency();
#ifdef NDEBUG
        info["optimized"] = true;
#else
        info["optimized"] = false;
#endif
        return info;
      },
      "How the extension was built: compiler, C++ standard, hardware threads, optimized.");
}
