// The one translation unit that knows Python: converts arrays, checks shapes and dtypes at
// the boundary (bad input -> ValueError naming the argument, wrong kind of object ->
// TypeError), and releases the GIL around pure C++ work. In `sample`, the GIL is taken back
// only to call the Python denoiser and the progress callback.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "noise.hpp"
#include "reparam.hpp"
#include "sampler.hpp"

namespace py = pybind11;

namespace {

constexpr py::ssize_t kImage = 28;
constexpr size_t kPerSample = kImage * kImage;  // one (1, 28, 28) sample

std::string type_name(py::handle obj) { return py::str(py::type::handle_of(obj).attr("__name__")); }

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// obj.__index__() as a Python int (TypeError naming the argument if it has none).
py::object as_index(py::handle obj, const std::string& name) {
  PyObject* index = PyNumber_Index(obj.ptr());
  if (index == nullptr) {
    PyErr_Clear();
    throw py::type_error(name + " must be an integer, got " + type_name(obj));
  }
  return py::reinterpret_steal<py::object>(index);
}

uint64_t to_u64(py::handle obj, const std::string& name) {  // in [0, 2**64)
  const py::object index = as_index(obj, name);
  const unsigned long long v = PyLong_AsUnsignedLongLong(index.ptr());
  if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error(name + " must be in [0, 2**64), got " + std::string(py::repr(index)));
  }
  return v;
}

int64_t to_i64(py::handle obj, const std::string& name) {
  const py::object index = as_index(obj, name);
  const long long v = PyLong_AsLongLong(index.ptr());
  if (v == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error(name + " is out of range: " + std::string(py::repr(index)));
  }
  return v;
}

int to_threads(int threads) {
  if (threads < 0) throw py::value_error("threads must be >= 0 (0 = all hardware threads)");
  return threads;
}

bool is_native_f32(const py::array& a) {
  const py::dtype dt = a.dtype();
  return dt.num() == py::dtype::of<float>().num() && dt.attr("isnative").cast<bool>();
}

// A numpy float32 array, native byte order, aligned, and (unless strided_ok) C-contiguous.
py::array as_f32(py::handle obj, const std::string& name, bool strided_ok = false) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(name + " must be a numpy.ndarray of float32, got " + type_name(obj));
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!is_native_f32(a))
    throw py::value_error(name + " must have dtype float32, got " + std::string(py::str(a.dtype())) +
                          " (convert with .astype(np.float32))");
  if (!strided_ok && !(a.flags() & py::array::c_style))
    throw py::value_error(name + " must be C-contiguous (use np.ascontiguousarray)");
  if (reinterpret_cast<uintptr_t>(a.data()) % alignof(float) != 0)
    throw py::value_error(name + " must be aligned to 4 bytes");
  return a;
}

const float* f32_data(const py::array& a) { return static_cast<const float*>(a.data()); }

py::array_t<float> new_f32(const std::vector<py::ssize_t>& shape) { return py::array_t<float>(shape); }

std::vector<float> schedule_array(py::handle schedule, const char* field) {
  py::object value;
  if (py::isinstance<py::dict>(schedule)) {
    auto d = py::reinterpret_borrow<py::dict>(schedule);
    if (!d.contains(field)) throw py::value_error(std::string("schedule is missing '") + field + "'");
    value = d[field];
  } else {
    if (!py::hasattr(schedule, field))
      throw py::value_error(std::string("schedule has no attribute '") + field + "'");
    value = schedule.attr(field);
  }
  const std::string name = std::string("schedule.") + field;
  py::array a = as_f32(value, name, /*strided_ok=*/true);
  if (a.ndim() != 1) throw py::value_error(name + " must be 1-D, got shape " + shape_str(a));
  auto r = a.unchecked<float, 1>();
  std::vector<float> out(static_cast<size_t>(r.shape(0)));
  for (py::ssize_t i = 0; i < r.shape(0); ++i) out[static_cast<size_t>(i)] = r(i);
  return out;
}

void raise_nonfinite(unsigned flags) {
  if (flags & lf::kLogvarBad) throw py::value_error("logvar contains NaN or infinity");
  if (flags & lf::kMuBad) throw py::value_error("mu contains NaN or infinity");
  if (flags & lf::kEpsBad) throw py::value_error("eps contains NaN or infinity");
}

py::array_t<float> randn_py(py::object seed, py::object shape, py::object step, py::object offset,
                            int threads) {
  const uint64_t s = to_u64(seed, "seed"), st = to_u64(step, "step");
  const uint64_t off = to_u64(offset, "offset");
  std::vector<py::ssize_t> dims;
  if (PyIndex_Check(shape.ptr())) {
    dims.push_back(static_cast<py::ssize_t>(to_i64(shape, "shape")));
  } else if (py::isinstance<py::sequence>(shape) && !py::isinstance<py::str>(shape)) {
    for (py::handle d : shape) dims.push_back(static_cast<py::ssize_t>(to_i64(d, "shape entries")));
  } else {
    throw py::type_error("shape must be an int or a sequence of ints, got " + type_name(shape));
  }
  uint64_t n = 1;
  for (py::ssize_t d : dims) {
    if (d < 0) throw py::value_error("shape entries must be >= 0");
    if (d > 0 && n > (uint64_t{1} << 40) / static_cast<uint64_t>(d))
      throw py::value_error("shape is too large");
    n *= static_cast<uint64_t>(d);
  }
  if (n > std::numeric_limits<uint64_t>::max() - off)
    throw py::value_error("offset + number of elements must be <= 2**64");
  auto out = new_f32(dims);
  float* p = out.mutable_data();
  const int th = to_threads(threads);
  {
    py::gil_scoped_release release;
    lf::randn_parallel(s, st, off, p, static_cast<size_t>(n), th);
  }
  return out;
}

py::object reparameterize_py(py::object mu_obj, py::object logvar_obj, py::object seed,
                             py::object eps_obj, py::object step, py::object offset,
                             bool return_eps, int threads) {
  py::array mu = as_f32(mu_obj, "mu");
  py::array logvar = as_f32(logvar_obj, "logvar");
  if (mu.ndim() != 2) throw py::value_error("mu must be 2-D (B, D), got shape " + shape_str(mu));
  if (mu.shape(0) == 0 || mu.shape(1) == 0)
    throw py::value_error("mu must be non-empty, got shape " + shape_str(mu));
  if (logvar.ndim() != 2 || logvar.shape(0) != mu.shape(0) || logvar.shape(1) != mu.shape(1))
    throw py::value_error("logvar must have the shape of mu " + shape_str(mu) + ", got " +
                          shape_str(logvar));
  if (seed.is_none() == eps_obj.is_none())
    throw py::value_error("pass exactly one of seed and eps");
  const int th = to_threads(threads);
  const size_t n = static_cast<size_t>(mu.size());
  auto z = new_f32({mu.shape(0), mu.shape(1)});
  float* zp = z.mutable_data();
  unsigned flags = 0;
  py::object eps_result = eps_obj;
  if (!eps_obj.is_none()) {
    py::array eps = as_f32(eps_obj, "eps");
    if (eps.ndim() != 2 || eps.shape(0) != mu.shape(0) || eps.shape(1) != mu.shape(1))
      throw py::value_error("eps must have the shape of mu " + shape_str(mu) + ", got " +
                            shape_str(eps));
    const float *m = f32_data(mu), *lv = f32_data(logvar), *e = f32_data(eps);
    py::gil_scoped_release release;
    flags = lf::reparameterize(m, lv, e, zp, n, th);
  } else {
    const uint64_t s = to_u64(seed, "seed"), st = to_u64(step, "step");
    const uint64_t off = to_u64(offset, "offset");
    if (n > std::numeric_limits<uint64_t>::max() - off)
      throw py::value_error("offset + number of elements must be <= 2**64");
    float* ep = nullptr;
    if (return_eps) {
      auto eps_out = new_f32({mu.shape(0), mu.shape(1)});
      ep = eps_out.mutable_data();
      eps_result = eps_out;
    }
    const float *m = f32_data(mu), *lv = f32_data(logvar);
    py::gil_scoped_release release;
    flags = lf::reparameterize_seeded(m, lv, s, st, off, ep, zp, n, th);
  }
  raise_nonfinite(flags);
  if (return_eps) return py::make_tuple(z, eps_result);
  return std::move(z);
}

lf::Method parse_method(const std::string& name) {
  constexpr lf::Method all[] = {lf::Method::Ancestral, lf::Method::Ddpm, lf::Method::Ddim,
                                lf::Method::DpmSolver2M, lf::Method::SdeDpmSolver2M};
  std::string names;
  for (lf::Method m : all) {
    if (name == lf::method_name(m)) return m;
    names += std::string(names.empty() ? "'" : ", '") + lf::method_name(m) + "'";
  }
  throw py::value_error("method must be one of " + names + ", got '" + name + "'");
}

std::vector<int64_t> int_list(py::handle obj, const std::string& name) {
  if (py::isinstance<py::str>(obj) || !py::isinstance<py::iterable>(obj))
    throw py::type_error(name + " must be a sequence of ints, got " + type_name(obj));
  std::vector<int64_t> out;
  for (py::handle v : obj) out.push_back(to_i64(v, name + " entries"));
  return out;
}

// The denoiser's output: float32, C-contiguous, shape (B, 1, 28, 28).
py::array check_eps(py::handle out, py::ssize_t batch) {
  if (!py::isinstance<py::array>(out))
    throw py::type_error("denoiser must return a numpy.ndarray, got " + type_name(out));
  py::array a = as_f32(out, "denoiser output");
  if (a.ndim() != 4 || a.shape(0) != batch || a.shape(1) != 1 || a.shape(2) != kImage ||
      a.shape(3) != kImage)
    throw py::value_error("denoiser output must have shape (" + std::to_string(batch) +
                          ", 1, 28, 28), got " + shape_str(a));
  return a;
}

py::object sample_py(py::object denoiser, py::object schedule, const std::string& method_name,
                     py::object timesteps, py::object x_T, py::object seed, py::object n_obj,
                     double eta, bool clip_x0, py::object sample_offset, py::object progress,
                     int64_t progress_every, py::object capture, int threads) {
  if (!PyCallable_Check(denoiser.ptr()))
    throw py::type_error("denoiser must be callable, got " + type_name(denoiser));
  const bool has_progress = !progress.is_none();
  if (has_progress && !PyCallable_Check(progress.ptr()))
    throw py::type_error("progress must be callable or None, got " + type_name(progress));
  if (progress_every < 1) throw py::value_error("progress_every must be >= 1");
  const int th = to_threads(threads);
  const lf::Method method = parse_method(method_name);
  lf::Schedule sc;
  sc.betas = schedule_array(schedule, "betas");
  sc.alphas = schedule_array(schedule, "alphas");
  sc.alphas_cumprod = schedule_array(schedule, "alphas_cumprod");
  sc.alphas_cumprod_prev = schedule_array(schedule, "alphas_cumprod_prev");
  sc.posterior_variance = schedule_array(schedule, "posterior_variance");
  const std::vector<int64_t> ts = int_list(timesteps, "timesteps");
  const std::vector<lf::StepPlan> plan = lf::plan_steps(sc, method, ts, eta, clip_x0);

  py::ssize_t batch = 0;
  py::array x_init;
  if (!x_T.is_none()) {
    x_init = as_f32(x_T, "x_T");
    if (x_init.ndim() != 4 || x_init.shape(1) != 1 || x_init.shape(2) != kImage ||
        x_init.shape(3) != kImage)
      throw py::value_error("x_T must have shape (B, 1, 28, 28), got " + shape_str(x_init));
    batch = x_init.shape(0);
    if (batch == 0) throw py::value_error("x_T must hold at least one sample (empty batch)");
    if (!n_obj.is_none() && to_i64(n_obj, "n") != batch)
      throw py::value_error("n does not match the batch of x_T");
  } else {
    if (seed.is_none() || n_obj.is_none())
      throw py::value_error("pass x_T, or seed and n (x_T ~ randn(seed, (n, 1, 28, 28)))");
    const int64_t n = to_i64(n_obj, "n");
    if (n < 1) throw py::value_error("n must be >= 1 (empty batch)");
    if (n > (int64_t{1} << 32)) throw py::value_error("n is too large");
    batch = static_cast<py::ssize_t>(n);
  }
  lf::NoiseKey key;
  if (!seed.is_none()) key.seed = to_u64(seed, "seed");
  else if (lf::plan_needs_noise(plan))
    throw py::value_error("seed is required: method '" + method_name +
                          "' draws fresh noise z during the loop (x_T alone is not enough)");
  const uint64_t first = to_u64(sample_offset, "sample_offset");
  const uint64_t max_first = std::numeric_limits<uint64_t>::max() / kPerSample - batch;
  if (first > max_first) throw py::value_error("sample_offset is too large");
  key.offset = first * kPerSample;

  auto x = new_f32({batch, 1, kImage, kImage});
  auto t_buf = new_f32({batch});
  std::map<int64_t, py::array_t<float>> captured;
  std::vector<float*> capture_at(plan.size(), nullptr);
  for (int64_t t : int_list(capture, "capture")) {
    size_t i = 0;
    while (i < ts.size() && ts[i] != t) ++i;
    if (i == ts.size())
      throw py::value_error("capture: timestep " + std::to_string(t) + " is not in timesteps");
    if (captured.count(t)) continue;
    auto buf = new_f32({batch, 1, kImage, kImage});
    capture_at[i] = buf.mutable_data();
    captured.emplace(t, buf);
  }

  float* xp = x.mutable_data();
  float* tp = t_buf.mutable_data();
  const float* init = x_T.is_none() ? nullptr : f32_data(x_init);
  const size_t count = static_cast<size_t>(batch) * kPerSample;
  py::object last_eps;  // keeps the denoiser's output alive while C++ reads it
  auto denoise = [&]() -> const float* {
    py::gil_scoped_acquire gil;
    py::object out = denoiser(x, t_buf);
    last_eps = check_eps(out, batch);
    return f32_data(py::reinterpret_borrow<py::array>(last_eps));
  };
  auto report = [&](int64_t done, int64_t total) {
    if (!has_progress) return;
    py::gil_scoped_acquire gil;
    progress(done, total);
  };
  {
    py::gil_scoped_release release;
    if (init != nullptr) std::memcpy(xp, init, count * sizeof(float));
    else lf::randn_parallel(key.seed, 0, key.offset, xp, count, th);
    lf::reverse_loop(plan, xp, tp, static_cast<size_t>(batch), kPerSample, key, th,
                     progress_every, capture_at, denoise, report);
  }
  if (captured.empty()) return std::move(x);
  py::dict states;
  for (auto& kv : captured) states[py::int_(kv.first)] = kv.second;
  return py::make_tuple(x, states);
}

py::tuple philox_py(py::object counter, py::object key) {
  const std::vector<int64_t> c = int_list(counter, "counter"), k = int_list(key, "key");
  if (c.size() != 4 || k.size() != 2)
    throw py::value_error("counter needs 4 words and key 2 words");
  uint32_t cw[4], kw[2], out[4];
  for (int i = 0; i < 4; ++i) {
    if (c[i] < 0 || c[i] > 0xFFFFFFFFll) throw py::value_error("counter words must be uint32");
    cw[i] = static_cast<uint32_t>(c[i]);
  }
  for (int i = 0; i < 2; ++i) {
    if (k[i] < 0 || k[i] > 0xFFFFFFFFll) throw py::value_error("key words must be uint32");
    kw[i] = static_cast<uint32_t>(k[i]);
  }
  lf::philox4x32_10(cw, kw, out);
  return py::make_tuple(out[0], out[1], out[2], out[3]);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const lf::NonFiniteError& e) {
      PyErr_SetString(PyExc_FloatingPointError, e.what());
    }
  });
  m.doc() = "latentforge C++ core: counter-based noise, reparameterization, DDPM/DDIM/DPM-Solver++ "
            "loop";
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

  m.def("randn", &randn_py, py::arg("seed"), py::arg("shape"), py::arg("step") = 0,
        py::arg("offset") = 0, py::arg("threads") = 0,
        R"doc(Standard normals from the counter-based generator, float32 array of `shape`.

Element j (flat, C order) is a pure function of (seed, step, offset + j): Philox-4x32-10 keyed
by the 64-bit seed, counter ((offset + j) // 4, step), then Box-Muller. So results do not
depend on `threads` or on how a range is split into calls; sample s of a batch of per-sample
size D starts at offset s*D. seed, step, offset: ints in [0, 2**64). threads: 0 = all cores.)doc");
  m.def("reparameterize", &reparameterize_py, py::arg("mu"), py::arg("logvar"),
        py::arg("seed") = py::none(), py::arg("eps") = py::none(), py::arg("step") = 0,
        py::arg("offset") = 0, py::arg("return_eps") = false, py::arg("threads") = 0,
        R"doc(z = mu + exp(0.5 * logvar) * eps for float32 C-contiguous (B, D) arrays.

Pass exactly one of `seed` (eps = randn(seed, mu.shape, step, offset)) and `eps` (same shape
as mu). Returns z, or (z, eps) with return_eps=True. NaN or infinity in mu, logvar or eps
raises ValueError. Multithreaded for large batches (threads: 0 = all cores); the result is
bitwise identical for any thread count.)doc");
  m.def("sample", &sample_py, py::arg("denoiser"), py::arg("schedule"), py::arg("method"),
        py::arg("timesteps"), py::arg("x_T") = py::none(), py::arg("seed") = py::none(),
        py::arg("n") = py::none(), py::arg("eta") = 0.0, py::arg("clip_x0") = false,
        py::arg("sample_offset") = 0, py::arg("progress") = py::none(),
        py::arg("progress_every") = 1, py::arg("capture") = py::tuple(), py::arg("threads") = 0,
        R"doc(Run the reverse process; returns x_0 float32 (B, 1, 28, 28) in [-1, 1].

denoiser(x, t) -> eps: x float32 (B, 1, 28, 28) and t float32 (B,) are allocated once and the
same arrays are passed at every step (bind them once, e.g. to an onnxruntime IO binding); it
must return a float32 C-contiguous (B, 1, 28, 28) array, which may be the same buffer each call.
schedule: dict or object with float32 1-D arrays betas, alphas, alphas_cumprod,
alphas_cumprod_prev, posterior_variance of equal length T.
method: 'ancestral' (the course's update), 'ddpm' (posterior variance), 'ddim' (eta; the
last listed step goes to x_0), 'dpmpp-2m' (multistep DPM-Solver++(2M), Lu et al. 2022,
Algorithm 2) or 'sde-dpmpp-2m' (its reverse-SDE variant); the two solvers equal diffusers'
DPMSolverMultistepScheduler (algorithm_type 'dpmsolver++' / 'sde-dpmsolver++', solver_order=2,
midpoint, final_sigmas_type='zero', lower_order_final): first order on their first step, the
last listed step goes to x_0, at least 2 timesteps (linspace_timesteps in
latentforge.runtime.schedule gives diffusers' 'linspace' spacing), no eta or clip_x0.
clip_x0 ('ddpm', 'ddim'): clamp x_0's prediction to [-1, 1] (ddim then re-derives eps from
it). timesteps: strictly descending ints in [0, T).
Start: x_T, or seed and n with x_T = randn(seed, (n, 1, 28, 28), step=0,
offset=sample_offset*784). Update i draws z = randn(seed, shape, step=i+1,
offset=sample_offset*784), so a batch split into chunks (sample_offset) gives the same samples;
stochastic methods need seed even with x_T. Math and noise keys match
latentforge.train.samplers. progress(i, total) runs every progress_every updates and after
the last. capture: timesteps whose x_t (before the update at t) is returned as
(x_0, {t: x_t}). The GIL is released except while calling denoiser and progress.
After every update the state is checked: NaN or infinity (a denoiser returning non-finite
values) raises FloatingPointError naming the step; finite results are untouched.)doc");
  m.def("philox4x32_10", &philox_py, py::arg("counter"), py::arg("key"),
        "One Philox-4x32-10 block: counter (4 uint32 words), key (2 uint32 words) -> 4 words "
        "(Random123's philox4x32_R(10, ...); for known-answer tests and re-implementations).");
}
