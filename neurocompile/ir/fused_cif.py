"""The CIF step fused into one compiled loop over the layer: the same IEEE operations as :func:`neurons.cif_step_` in
the same order, so the same membranes, counts and spikes bit for bit (tests/test_fused_cif.py), with the step's spike
sums counted on the way (the simulator's statistics, which took two more passes).

Why it is exact: the step is floor, min, max, add, subtract, and (θ != 1) one division and one multiplication, each
a correctly rounded IEEE operation in the tensor's dtype; the loop is built with ``-ffp-contract=off`` (no fused
multiply-add) and vectorizes only floor, min and max, which round nothing. ``-fno-trapping-math`` lets it vectorize
floor (nothing traps here); ``-march=native`` is why the build is keyed by the CPU as well as the source.

Optional: :func:`load` builds it with torch.utils.cpp_extension (a C++ compiler and ninja; about 20 s once per
machine, cached in torch's extension folder). Where it cannot be built, on CUDA, for a dtype other than float32 or
float64, for non-contiguous tensors, or with ``NEUROCOMPILE_FUSED=0``, ``cif_step_`` runs torch's elementwise passes:
the same numbers, about 5x slower per step. ``cif_step_`` uses the kernel only once something has loaded it (the
reference simulator does on CPU), so no other caller ever waits for a build.

The same build holds the simulator's other compiled loops: the count domain's (certified.py), the inhibition pool's
tiling step (:func:`pool_step`, the same numbers as torch's add_, max_pool2d and sub_), the sink's bias added inside
the CIF step (the same roundings as adding it first), and the event-driven convolution (:func:`event_conv`,
targets/reference/event_driven.py: sums in an order of its own, so float32 results differ from oneDNN's by rounding).
"""
from __future__ import annotations

import hashlib
import math
import os
import sys
from typing import Any

import torch

SOURCE = r'''
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <vector>

// m += x; d = clip(floor(m / theta), -g, g); S' = clip(S + d, 0, cap); s = S' - S; S = S'; m -= s * theta;
// out = s * amp. UNIT: theta == 1 (no division, no product). Sums of |s| and s per chunk in integers (vectorizes);
// a NaN spike (a membrane that overflowed) is flagged, so the sums come back NaN as torch's would.
// BIAS: x is first x + b, b (R values, one sample's neurons) repeating per sample: torch's broadcast add, so the
// same two roundings (x + b, then m + that) as the sink adding its bias before the step.
template <typename T, bool UNIT, bool BIAS>
static void run(T* bm, T* bS, const T* bx, const T* bb, int64_t R, T* bo, int64_t n, T theta, T g, T cap, T amp,
                std::vector<int64_t>& mag, std::vector<int64_t>& net, std::vector<int64_t>& bad) {
  at::parallel_for(0, n, 8192, [=, &mag, &net, &bad](int64_t b, int64_t e) {
    int64_t A = 0, C = 0, nan = 0;
    for (int64_t k = b; k < e;) {  // blocks whose sums fit 32-bit integers (|s| <= gamma <= 4096)
      int64_t len = std::min<int64_t>(4096, e - k);
      if (BIAS) len = std::min<int64_t>(len, R - k % R);  // within one sample: the bias runs contiguously
      T biased[BIAS ? 4096 : 1];
      if (BIAS) {  // x + b first, in its own loop (one loop with both adds did not vectorize)
        const T* __restrict__ x0 = bx + k; const T* __restrict__ pb = bb + k % R; T* __restrict__ xb = biased;
        for (int64_t i = 0; i < len; ++i) xb[i] = x0[i] + pb[i];
      }
      T* __restrict__ pm = bm + k; T* __restrict__ pS = bS + k; const T* __restrict__ px = BIAS ? biased : bx + k;
      T* __restrict__ po = bo + k;
      int a = 0, c = 0, bad_here = 0;  // 32-bit: float to int32 conversion vectorizes on AVX2, to int64 does not
      for (int64_t i = 0; i < len; ++i) {
        T v = pm[i] + px[i];
        T d = std::min(std::max(std::floor(UNIT ? v : v / theta), -g), g);
        T s0 = pS[i];
        T s1 = std::min(std::max(s0 + d, T(0)), cap);
        T s = s1 - s0;
        pS[i] = s1;
        pm[i] = UNIT ? v - s : v - s * theta;
        po[i] = s * amp;
        bad_here |= (s != s);
        int si = (s == s) ? (int)s : 0;
        a += si < 0 ? -si : si; c += si;
      }
      A += a; C += c; nan |= bad_here;
      k += len;
    }
    int t = at::get_thread_num();
    mag[t] += A; net[t] += C; bad[t] |= nan;
  });
}

// bias: empty, or one sample's R = m.numel() / N values added to x first.
std::vector<double> cif_step(torch::Tensor m, torch::Tensor S, torch::Tensor x, torch::Tensor out, double theta,
                             double gamma, double cap, double amp, torch::Tensor bias) {
  int nt = at::get_num_threads();
  std::vector<int64_t> mag(nt, 0), net(nt, 0), bad(nt, 0);
  int64_t n = m.numel(), R = std::max<int64_t>(bias.numel(), 1);
  AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "cif_step", [&] {
    scalar_t* pm = m.data_ptr<scalar_t>(); scalar_t* pS = S.data_ptr<scalar_t>();
    const scalar_t* px = x.data_ptr<scalar_t>(); scalar_t* po = out.data_ptr<scalar_t>();
    const scalar_t* pb = bias.numel() ? bias.data_ptr<scalar_t>() : nullptr;
    if (theta == 1.0 && pb)
      run<scalar_t, true, true>(pm, pS, px, pb, R, po, n, 1, gamma, cap, amp, mag, net, bad);
    else if (theta == 1.0)
      run<scalar_t, true, false>(pm, pS, px, pb, R, po, n, 1, gamma, cap, amp, mag, net, bad);
    else if (pb)
      run<scalar_t, false, true>(pm, pS, px, pb, R, po, n, theta, gamma, cap, amp, mag, net, bad);
    else
      run<scalar_t, false, false>(pm, pS, px, pb, R, po, n, theta, gamma, cap, amp, mag, net, bad);
  });
  double A = 0, C = 0; bool nan = false;
  for (int t = 0; t < nt; ++t) { A += mag[t]; C += net[t]; nan |= bad[t] != 0; }
  if (nan) A = C = NAN;
  return {A, C};
}

// The count domain (targets/reference/certified.py), float32 only.
// cif_count_step: out = clip(S + clip(F - S, -g, g), 0, cap) (neurons.cif_count_step's passes, in their order).
void cif_count_step(torch::Tensor S, torch::Tensor F, torch::Tensor out, double gamma, double cap) {
  const float* bS = S.data_ptr<float>(); const float* bF = F.data_ptr<float>(); float* bo = out.data_ptr<float>();
  const float g = (float)gamma, c = (float)cap;
  at::parallel_for(0, S.numel(), 8192, [=](int64_t b, int64_t e) {
    const float* __restrict__ pS = bS + b; const float* __restrict__ pF = bF + b; float* __restrict__ po = bo + b;
    for (int64_t i = 0; i < e - b; ++i) {
      float d = std::min(std::max(pF[i] - pS[i], -g), g);
      po[i] = std::min(std::max(d + pS[i], 0.f), c);
    }
  });
}

// The change d = S' - S of every count: (sum |d|, sum d), and per sample (first dimension) whether any count changed,
// OR-ed into `late` (a bool tensor of N, or an empty one). NaN sums where a d is NaN.
std::vector<double> count_change(torch::Tensor S1, torch::Tensor S0, torch::Tensor late) {
  const int64_t N = S1.size(0), R = S1.numel() / N;
  const float* b1 = S1.data_ptr<float>(); const float* b0 = S0.data_ptr<float>();
  bool* pl = late.numel() ? late.data_ptr<bool>() : nullptr;
  std::vector<int64_t> mag(N), net(N), bad(N), any(N);
  at::parallel_for(0, N, 1, [&](int64_t nb, int64_t ne) {
    for (int64_t n = nb; n < ne; ++n) {
      int64_t A = 0, C = 0, B = 0, Y = 0;
      for (int64_t k = 0; k < R; k += 4096) {
        const int64_t len = std::min<int64_t>(4096, R - k);
        const float* __restrict__ p1 = b1 + n * R + k; const float* __restrict__ p0 = b0 + n * R + k;
        int a = 0, c = 0, nan = 0, y = 0;
        for (int64_t i = 0; i < len; ++i) {
          float d = p1[i] - p0[i];
          nan |= (d != d);
          int di = (d == d) ? (int)d : 0;
          a += di < 0 ? -di : di; c += di; y |= (d != 0.f);
        }
        A += a; C += c; B |= nan; Y |= y;
      }
      mag[n] = A; net[n] = C; bad[n] = B; any[n] = Y;
    }
  });
  double A = 0, C = 0; bool nan = false;
  for (int64_t n = 0; n < N; ++n) {
    A += mag[n]; C += net[n]; nan |= bad[n] != 0;
    if (pl && any[n]) pl[n] = true;
  }
  if (nan) A = C = NAN;
  return {A, C};
}

// F = floor(X), X = X - F (the fractional part, exact), and the indices of the close calls (D x count), ascending: the
// fractional part r below d or above u and, where `sat`, F + 1 > a and F < b (thresholds already rounded to float, as
// torch compares a float tensor with a number); a sample (first dimension) with a NaN has none, as in
// certified_decide._close_calls's passes, where its least and greatest r are NaN.
torch::Tensor close_calls(torch::Tensor X, torch::Tensor F, double d, double u, double a, double b, bool sat) {
  const int64_t N = X.size(0), R = X.numel() / N;
  float* bx = X.data_ptr<float>(); float* bf = F.data_ptr<float>();
  const float fd = (float)d, fu = (float)u, fa = (float)a, fb = (float)b;
  std::vector<std::vector<int64_t>> found(N);
  at::parallel_for(0, N, 1, [&](int64_t nb, int64_t ne) {
    for (int64_t n = nb; n < ne; ++n) {
      float* __restrict__ x = bx + n * R; float* __restrict__ f = bf + n * R;
      int nan = 0, near = 0;
      for (int64_t i = 0; i < R; ++i) {  // vectorizes: floor, subtract, compare
        float v = x[i], fl = std::floor(v), r = v - fl;
        f[i] = fl; x[i] = r;
        nan |= (r != r); near |= (r < fd) | (r > fu);
      }
      if (nan || !near) continue;
      std::vector<int64_t>& out = found[n];
      for (int64_t i = 0; i < R; ++i) {
        float r = x[i];
        if ((r < fd || r > fu) && (!sat || (f[i] + 1.f > fa && f[i] < fb))) out.push_back(n * R + i);
      }
    }
  });
  int64_t total = 0;
  for (auto& v : found) total += (int64_t)v.size();
  const int64_t D = X.dim();
  auto idx = torch::empty({D, total}, torch::dtype(torch::kLong));  // one row of indices per dimension
  int64_t* p = idx.data_ptr<int64_t>();
  int64_t k = 0;
  for (auto& v : found)
    for (int64_t flat : v) {
      for (int64_t j = D - 1; j >= 0; --j) { p[j * total + k] = flat % X.size(j); flat /= X.size(j); }
      ++k;
    }
  return idx;
}

// Event-driven connection (targets/reference/event_driven.py): a convolution (groups 1) of x (N, C, H, W), mostly
// zeros (spikes), with the weight laid out as wt (C, KH, KW, O): every nonzero x[n, c, h, w] adds x * wt[c, kh, kw, :]
// to the O outputs of each position it reaches, in a (Ho * Wo, O) buffer per sample, then written out as (O, Ho, Wo).
// A dense layer is the case H = W = KH = KW = 1. Each sample sums its events in one fixed order (input position, then
// kernel offset), whatever the batch or the thread count. Returns false, writing nothing, where more than `most`
// of x is nonzero (the dense convolution is then faster).
template <typename T>
static bool event_run(const T* bx, const T* bw, T* bo, int64_t N, int64_t C, int64_t H, int64_t W, int64_t O,
                      int64_t KH, int64_t KW, int64_t Ho, int64_t Wo, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                      int64_t dh, int64_t dw, double most) {
  const int64_t R = C * H * W;
  std::vector<int64_t> found(N, 0);
  at::parallel_for(0, N, 1, [&](int64_t nb, int64_t ne) {
    for (int64_t n = nb; n < ne; ++n) {
      const T* __restrict__ x = bx + n * R;
      int64_t k = 0;
      for (int64_t i = 0; i < R; ++i) k += (x[i] != T(0));
      found[n] = k;
    }
  });
  int64_t total = 0;
  for (int64_t n = 0; n < N; ++n) total += found[n];
  if ((double)total > most * (double)(N * R)) return false;
  at::parallel_for(0, N, 1, [&](int64_t nb, int64_t ne) {
    std::vector<T> acc(Ho * Wo * O);
    for (int64_t n = nb; n < ne; ++n) {
      std::fill(acc.begin(), acc.end(), T(0));
      const T* __restrict__ x = bx + n * R;
      T* __restrict__ a = acc.data();
      if (found[n]) {
        for (int64_t c = 0; c < C; ++c)
          for (int64_t h = 0; h < H; ++h)
            for (int64_t w = 0; w < W; ++w) {
              const T v = x[(c * H + h) * W + w];
              if (v == T(0)) continue;
              // with dilation 1, only every stride-th kernel offset lands on an output: start at the first
              for (int64_t kh = dh == 1 ? (h + ph) % sh : 0; kh < KH; kh += dh == 1 ? sh : 1) {
                const int64_t r = h + ph - kh * dh;
                if (r < 0 || r % sh) continue;
                const int64_t ho = r / sh;
                if (ho >= Ho) continue;
                for (int64_t kw = dw == 1 ? (w + pw) % sw : 0; kw < KW; kw += dw == 1 ? sw : 1) {
                  const int64_t q = w + pw - kw * dw;
                  if (q < 0 || q % sw) continue;
                  const int64_t wo = q / sw;
                  if (wo >= Wo) continue;
                  T* __restrict__ dst = a + (ho * Wo + wo) * O;
                  const T* __restrict__ src = bw + ((c * KH + kh) * KW + kw) * O;
                  for (int64_t o = 0; o < O; ++o) dst[o] += v * src[o];
                }
              }
            }
      }
      T* __restrict__ y = bo + n * O * Ho * Wo;
      const int64_t P = Ho * Wo;
      for (int64_t o = 0; o < O; ++o)
        for (int64_t i = 0; i < P; ++i) y[o * P + i] = a[i * O + o];
    }
  });
  return true;
}

bool event_conv(torch::Tensor x, torch::Tensor wt, torch::Tensor out, int64_t sh, int64_t sw, int64_t ph,
                int64_t pw, int64_t dh, int64_t dw, double most) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t KH = wt.size(1), KW = wt.size(2), O = wt.size(3), Ho = out.size(2), Wo = out.size(3);
  bool done = false;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "event_conv", [&] {
    done = event_run<scalar_t>(x.data_ptr<scalar_t>(), wt.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), N, C, H, W,
                               O, KH, KW, Ho, Wo, sh, sw, ph, pw, dh, dw, most);
  });
  return done;
}

// Lateral-inhibition max pool on windows that tile the input (InhibitionMaxPool.step): A += x; out = max of each
// kh x kw window of A; A -= out over the window. The same IEEE operations as torch's add_, max_pool2d and sub_, in
// one pass; a NaN in a window makes its max NaN, as max_pool2d's does. A window whose inputs are all zero is left
// as it is and sends 0: after any step the largest accumulator of every window is 0 (where nothing overflowed).
template <typename T>
static bool pool_run(T* bA, const T* bx, T* bo, int64_t NC, int64_t H, int64_t W, int64_t kh, int64_t kw) {
  const int64_t Ho = H / kh, Wo = W / kw;
  std::vector<int> sent(at::get_num_threads(), 0);
  at::parallel_for(0, NC, 16, [=, &sent](int64_t b, int64_t e) {
    int any = 0;
    for (int64_t p = b; p < e; ++p) {
      T* __restrict__ A = bA + p * H * W; const T* __restrict__ x = bx + p * H * W; T* __restrict__ o = bo + p * Ho * Wo;
      for (int64_t r = 0; r < Ho; ++r)
        for (int64_t c = 0; c < Wo; ++c) {
          const int64_t at0 = (r * kh) * W + c * kw;
          int hit = 0;
          for (int64_t i = 0; i < kh; ++i)
            for (int64_t j = 0; j < kw; ++j) hit |= (x[at0 + i * W + j] != T(0));
          if (!hit) { o[r * Wo + c] = T(0); continue; }
          for (int64_t i = 0; i < kh; ++i)
            for (int64_t j = 0; j < kw; ++j) A[at0 + i * W + j] += x[at0 + i * W + j];
          T m = A[at0];
          for (int64_t i = 0; i < kh; ++i)
            for (int64_t j = 0; j < kw; ++j) {
              const T v = A[at0 + i * W + j];
              if (v > m || v != v) m = v;
            }
          o[r * Wo + c] = m;
          any |= (m != T(0));
          for (int64_t i = 0; i < kh; ++i)
            for (int64_t j = 0; j < kw; ++j) A[at0 + i * W + j] -= m;
        }
    }
    sent[at::get_thread_num()] |= any;
  });
  for (int v : sent) if (v) return true;
  return false;
}

// Returns whether any window sent a nonzero value (false: `out` is all zeros).
bool pool_step(torch::Tensor A, torch::Tensor x, torch::Tensor out, int64_t kh, int64_t kw) {
  const int64_t H = A.size(-2), W = A.size(-1), NC = A.numel() / (H * W);
  bool sent = false;
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "pool_step", [&] {
    sent = pool_run<scalar_t>(A.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), NC, H, W, kh,
                              kw);
  });
  return sent;
}
'''
FUNCTIONS = ["cif_step", "cif_count_step", "count_change", "close_calls", "event_conv", "pool_step"]
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fopenmp"]

_KERNEL: list[Any] = []  # [the loaded module] once load() succeeded
_FAILED: list[str] = []  # [why] once a build failed: never tried again in this process
DTYPES = (torch.float32, torch.float64)
SUMS = "fused_sums"  # where cif_step_ leaves the step's (sum |s|, sum s) in its scratch dict
OUT = "spikes_out"  # where a caller leaves cif_step_ a tensor to write the spikes into (cif_step_ takes it out)


def loaded() -> bool:
    """True once :func:`load` has built or found the kernel in this process."""
    return bool(_KERNEL)


def _build_name() -> str:
    """The extension's name: the source, the flags and this CPU (``-march=native`` code runs only on its own kind)."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = "".join(sorted({ln for ln in f if ln.startswith(("model name", "flags"))}))
    except OSError:  # not Linux: the machine's description instead
        import platform

        cpu = platform.processor() + platform.machine()
    key = hashlib.sha256("\0".join([SOURCE, " ".join(FLAGS), cpu, torch.__version__]).encode()).hexdigest()[:16]
    return f"neurocompile_fused_cif_{key}"


def enabled() -> bool:
    """False where ``NEUROCOMPILE_FUSED=0`` asks for torch's passes (the same numbers)."""
    return os.environ.get("NEUROCOMPILE_FUSED", "1") != "0"


def load() -> Any | None:
    """The compiled kernel, built on the first call on this machine (about 20 s; cached after); None where it cannot
    be built (the reason in :func:`why_not`) or is switched off. Never raises."""
    if _KERNEL or _FAILED or not enabled():
        return _KERNEL[0] if _KERNEL else None
    try:
        import io
        from contextlib import redirect_stderr, redirect_stdout

        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):  # its CUDA_HOME note on import
            from torch.utils.cpp_extension import load_inline

        from torch.utils.cpp_extension import _get_build_directory

        name = _build_name()
        if not os.path.exists(os.path.join(_get_build_directory(name, False), name + ".so")):
            print("neurocompile: building the fused CIF step for this CPU (once per machine, about 30 s)",
                  file=sys.stderr, flush=True)
        bindir = os.path.dirname(sys.executable)  # the venv's ninja, where the venv is not activated
        if bindir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            _KERNEL.append(load_inline(name, cpp_sources=SOURCE, functions=FUNCTIONS, verbose=False,
                                       extra_cflags=FLAGS, extra_ldflags=["-fopenmp"]))
    except Exception as e:  # noqa: BLE001 - no compiler, no ninja, a failed build: torch's passes give the same numbers
        _FAILED.append(f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}")
        return None
    return _KERNEL[0]


def why_not() -> str | None:
    """Why the kernel is not in use (None: it is loaded)."""
    if _KERNEL:
        return None
    if not enabled():
        return "switched off (NEUROCOMPILE_FUSED=0)"
    return _FAILED[0] if _FAILED else "not loaded yet"


def step(m: torch.Tensor, count: torch.Tensor, x: torch.Tensor, theta: float, cap: int, gamma: int, amp: float,
         out: torch.Tensor, bias: torch.Tensor | None = None) -> tuple[float, float] | None:
    """One CIF step in the loaded kernel, in place (``m``, ``count``; spikes times ``amp`` into ``out``), on the
    current ``x`` (plus ``bias``, one sample's values in its layout, as torch's broadcast add), returning (sum |s|,
    sum s) over the layer; None (nothing done) where the kernel is not loaded or does not apply."""
    if m.dtype not in DTYPES or not _fits(m, count, x, out, dtype=m.dtype):
        return None
    if bias is None:
        bias = _NO_BIAS.get(m.dtype)
        if bias is None:
            bias = _NO_BIAS[m.dtype] = torch.empty(0, dtype=m.dtype)
    elif not (bias.dtype == m.dtype and bias.device.type == "cpu" and bias.is_contiguous() and len(m) and
              bias.numel() * len(m) == m.numel()):
        return None
    mag, net = _KERNEL[0].cif_step(m, count, x, out, float(theta), float(gamma), float(cap), float(amp), bias)
    return mag, net


_NO_BIAS: dict[torch.dtype, torch.Tensor] = {}


def _fits(*ts: torch.Tensor, dtype: torch.dtype = torch.float32) -> bool:
    """Tensors the kernel takes: loaded, on the CPU, of ``dtype``, contiguous, one shape."""
    return bool(_KERNEL) and all(t.device.type == "cpu" and t.dtype == dtype and t.is_contiguous() and
                                 t.shape == ts[0].shape for t in ts)


def count_step(count: torch.Tensor, floor_x: torch.Tensor, cap: int, gamma: int,
               out: torch.Tensor | None) -> torch.Tensor | None:
    """:func:`neurons.cif_count_step` (float32) into ``out`` in one loop; None where the kernel does not apply."""
    if out is None or not _fits(count, floor_x, out):
        return None
    _KERNEL[0].cif_count_step(count, floor_x, out, float(gamma), float(cap))
    return out


def count_change(new: torch.Tensor, old: torch.Tensor, late: torch.Tensor | None) -> tuple[float, float] | None:
    """(sum |d|, sum d) of d = new - old (float32 counts), and ``late[i] |= any(d[i] != 0)`` per sample where ``late``
    is given; None where the kernel does not apply."""
    if not _fits(new, old) or (late is not None and not (late.dtype == torch.bool and late.device.type == "cpu"
                                                         and late.is_contiguous() and len(late) == len(new))):
        return None
    mag, net = _KERNEL[0].count_change(new, old, late if late is not None else torch.empty(0, dtype=torch.bool))
    return mag, net


def close_calls(X: torch.Tensor, F: torch.Tensor, delta: float, sat: tuple[float, float] | None) -> torch.Tensor | None:
    """floor(X) into ``F``, the fractional part into ``X``, and the indices of the close calls, one row per dimension (see
    certified_decide._close_calls, whose passes this is in one loop); None where the kernel does not apply."""
    if not _fits(X, F) or X.dim() < 1 or len(X) == 0:
        return None
    lo, hi = sat if sat is not None else (-math.inf, math.inf)
    return _KERNEL[0].close_calls(X, F, delta, 1 - delta, lo - delta, hi + delta, sat is not None)


def event_conv(x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor, sh: int, sw: int, ph: int, pw: int, dh: int,
               dw: int, most: float) -> bool:
    """The event-driven convolution (targets/reference/event_driven.py) of ``x`` (N, C, H, W) with ``weight``
    (C, kh, kw, C_out) into ``out`` (N, C_out, Ho, Wo); False (nothing written) where more than ``most`` of ``x`` is
    nonzero or the kernel is not loaded."""
    if not (_KERNEL and x.dtype == weight.dtype == out.dtype and out.is_contiguous() and x.is_contiguous()):
        return False
    return bool(_KERNEL[0].event_conv(x, weight, out, sh, sw, ph, pw, dh, dw, float(most)))


def pool_step(acc: torch.Tensor, x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor | None:
    """InhibitionMaxPool's step on tiling windows (``acc`` += ``x``, the window maxima sent and subtracted) in one loop,
    the same numbers; the maxima (marked silent where all are zero, as the simulator marks spikes), or None where the
    kernel does not apply."""
    if not (_fits(acc, x, dtype=acc.dtype) and acc.dtype in DTYPES and acc.dim() == 4):
        return None
    kh, kw = kernel
    N, C, H, W = acc.shape
    out = torch.empty((N, C, H // kh, W // kw), dtype=acc.dtype)
    out._nc_silent = not _KERNEL[0].pool_step(acc, x, out, kh, kw)
    return out
