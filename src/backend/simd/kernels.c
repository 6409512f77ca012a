/*
 * WebAssembly SIMD kernels that run on tfjs-backend-wasm's own memory (the module imports it), for
 * src/backend/simdKernels.ts. Built by src/backend/simd/build.js (clang --target=wasm32
 * -msimd128) into src/backend/simd/kernels.wasm.ts; the build is checked in, so nothing here is
 * needed to build or run the project.
 *
 * Rules for this file, since the module shares memory with tfjs and owns none of it:
 *  - no stack, no globals, no static data: every buffer comes in as a pointer from the caller
 *    (build.js refuses a module that touches the stack pointer or has data segments);
 *  - no libc: exp is a polynomial below, sqrt and division are wasm instructions;
 *  - __restrict only where the caller never passes overlapping buffers (gn_backward's dz is its
 *    dx, on purpose: it carries none).
 * Every loop runs in a fixed order, so results are deterministic.
 */
#include <wasm_simd128.h>
#include <stdint.h>

#define EXPORT(name) __attribute__((export_name(#name)))

typedef float f32;
typedef double f64;

/* exp(x) for f32x4, |relative error| < 2e-7 on [-87, 88] (x clamped there): x = k ln2 + r,
 * |r| <= ln2 / 2, exp(r) by its degree-6 Taylor polynomial, 2^k by building the exponent bits. */
static inline v128_t exp4(v128_t x) {
  x = wasm_f32x4_min(wasm_f32x4_max(x, wasm_f32x4_splat(-87.0f)), wasm_f32x4_splat(88.0f));
  v128_t k = wasm_f32x4_nearest(wasm_f32x4_mul(x, wasm_f32x4_splat(1.44269504088896341f)));
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(k, wasm_f32x4_splat(0.693359375f)));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(k, wasm_f32x4_splat(-2.12194440e-4f)));
  v128_t p = wasm_f32x4_splat(1.0f / 720.0f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.0f / 120.0f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.0f / 24.0f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.0f / 6.0f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(0.5f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.0f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.0f));
  v128_t bits = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(k), wasm_i32x4_splat(127)), 23);
  return wasm_f32x4_mul(p, bits);
}

static inline v128_t sigmoid4(v128_t z) {
  v128_t one = wasm_f32x4_splat(1.0f);
  return wasm_f32x4_div(one, wasm_f32x4_add(one, exp4(wasm_f32x4_neg(z))));
}

static inline f32 sigmoid1(f32 z) {
  v128_t s = sigmoid4(wasm_f32x4_splat(z));
  return wasm_f32x4_extract_lane(s, 0);
}

/* s[ch] += sum_p x[p*c + ch], q[ch] += sum_p x^2, over hw pixels of one example (f64 sums). */
static void channel_sums(const f32 *__restrict x, uint32_t hw, uint32_t c, f64 *__restrict s, f64 *__restrict q) {
  uint32_t c4 = c & ~3u;
  for (uint32_t p = 0; p < hw; p++) {
    const f32 *row = x + (uintptr_t)p * c;
    uint32_t ch = 0;
    for (; ch < c4; ch += 4) {
      v128_t v = wasm_v128_load(row + ch);
      v128_t lo = wasm_f64x2_promote_low_f32x4(v);
      v128_t hi = wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
      wasm_v128_store(s + ch, wasm_f64x2_add(wasm_v128_load(s + ch), lo));
      wasm_v128_store(s + ch + 2, wasm_f64x2_add(wasm_v128_load(s + ch + 2), hi));
      wasm_v128_store(q + ch, wasm_f64x2_add(wasm_v128_load(q + ch), wasm_f64x2_mul(lo, lo)));
      wasm_v128_store(q + ch + 2, wasm_f64x2_add(wasm_v128_load(q + ch + 2), wasm_f64x2_mul(hi, hi)));
    }
    for (; ch < c; ch++) {
      f64 v = row[ch];
      s[ch] += v;
      q[ch] += v * v;
    }
  }
}

/* out[p*c + ch] = x[p*c + ch] * a[ch] + b[ch] (then swish when asked), over hw pixels. */
static void affine(const f32 *__restrict x, const f32 *__restrict a, const f32 *__restrict b, uint32_t hw, uint32_t c, int swish, f32 *__restrict out) {
  uint32_t c4 = c & ~3u;
  for (uint32_t p = 0; p < hw; p++) {
    const f32 *row = x + (uintptr_t)p * c;
    f32 *orow = out + (uintptr_t)p * c;
    uint32_t ch = 0;
    for (; ch < c4; ch += 4) {
      v128_t z = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(row + ch), wasm_v128_load(a + ch)), wasm_v128_load(b + ch));
      if (swish) z = wasm_f32x4_mul(z, sigmoid4(z));
      wasm_v128_store(orow + ch, z);
    }
    for (; ch < c; ch++) {
      f32 z = row[ch] * a[ch] + b[ch];
      orow[ch] = swish ? z * sigmoid1(z) : z;
    }
  }
}

/*
 * GroupNorm (+ swish) forward over x [n, hw, c], groups of c / groups consecutive channels.
 * mean, rstd: [n, groups] out. scratch: 2c f64 then 2c f32 (8-byte aligned).
 */
EXPORT(gn_forward)
void gn_forward(const f32 *x, const f32 *gamma, const f32 *beta, uint32_t n, uint32_t hw, uint32_t c, uint32_t groups, f32 eps, int swish,
                f32 *y, f32 *mean, f32 *rstd, void *scratch) {
  f64 *s = (f64 *)scratch;
  f64 *q = s + c;
  f32 *scale = (f32 *)(q + c);
  f32 *shift = scale + c;
  uint32_t cg = c / groups;
  f64 count = (f64)hw * cg;
  for (uint32_t b = 0; b < n; b++) {
    for (uint32_t ch = 0; ch < c; ch++) s[ch] = q[ch] = 0;
    const f32 *xb = x + (uintptr_t)b * hw * c;
    channel_sums(xb, hw, c, s, q);
    for (uint32_t g = 0; g < groups; g++) {
      f64 sg = 0, qg = 0;
      for (uint32_t ch = g * cg; ch < (g + 1) * cg; ch++) {
        sg += s[ch];
        qg += q[ch];
      }
      f64 m = sg / count;
      f64 var = qg / count - m * m;
      if (var < 0) var = 0;
      f32 mf = (f32)m;
      f32 rf = (f32)(1.0 / __builtin_sqrt(var + (f64)eps));
      mean[b * groups + g] = mf;
      rstd[b * groups + g] = rf;
      for (uint32_t ch = g * cg; ch < (g + 1) * cg; ch++) {
        f64 sc = (f64)rf * gamma[ch];
        scale[ch] = (f32)sc;
        shift[ch] = (f32)(beta[ch] - (f64)mf * sc);
      }
    }
    affine(xb, scale, shift, hw, c, swish, y + (uintptr_t)b * hw * c);
  }
}

/*
 * GroupNorm (+ swish) backward: dx [n, hw, c], dgamma, dbeta [c]. dx = r (gamma dz - mean(gamma dz)
 * - xhat mean(gamma dz xhat)) per group, dz the gradient at z = xhat gamma + beta (through swish:
 * dz = dy s (1 + z (1 - s)), s = sigmoid(z)). scratch: 4c f64 then 5c f32.
 */
EXPORT(gn_backward)
void gn_backward(const f32 *dy, const f32 *x, const f32 *gamma, const f32 *beta, const f32 *mean, const f32 *rstd, uint32_t n, uint32_t hw, uint32_t c,
                 uint32_t groups, int swish, f32 *dx, f32 *dgamma, f32 *dbeta, void *scratch) {
  f64 *sum_dz = (f64 *)scratch;
  f64 *sum_dzx = sum_dz + c;
  f64 *acc_dgamma = sum_dzx + c;
  f64 *acc_dbeta = acc_dgamma + c;
  f32 *scale = (f32 *)(acc_dbeta + c);
  f32 *shift = scale + c;
  f32 *ca = shift + c;
  f32 *cb = ca + c;
  f32 *ck = cb + c;
  uint32_t cg = c / groups;
  uint32_t c4 = c & ~3u;
  f64 count = (f64)hw * cg;
  for (uint32_t ch = 0; ch < c; ch++) acc_dgamma[ch] = acc_dbeta[ch] = 0;
  for (uint32_t b = 0; b < n; b++) {
    const f32 *xb = x + (uintptr_t)b * hw * c;
    const f32 *dyb = dy + (uintptr_t)b * hw * c;
    f32 *dxb = dx + (uintptr_t)b * hw * c;
    for (uint32_t ch = 0; ch < c; ch++) {
      uint32_t g = b * groups + ch / cg;
      f64 sc = (f64)rstd[g] * gamma[ch];
      scale[ch] = (f32)sc;
      shift[ch] = (f32)(beta[ch] - (f64)mean[g] * sc);
      sum_dz[ch] = sum_dzx[ch] = 0;
    }
    /* Pass 1: dz (into dx when through swish) and its per-channel sums with and without x. */
    const f32 *dz = swish ? dxb : dyb;
    for (uint32_t p = 0; p < hw; p++) {
      uintptr_t o = (uintptr_t)p * c;
      uint32_t ch = 0;
      for (; ch < c4; ch += 4) {
        v128_t xv = wasm_v128_load(xb + o + ch);
        v128_t d = wasm_v128_load(dyb + o + ch);
        if (swish) {
          v128_t z = wasm_f32x4_add(wasm_f32x4_mul(xv, wasm_v128_load(scale + ch)), wasm_v128_load(shift + ch));
          v128_t s = sigmoid4(z);
          v128_t one = wasm_f32x4_splat(1.0f);
          d = wasm_f32x4_mul(wasm_f32x4_mul(d, s), wasm_f32x4_add(one, wasm_f32x4_mul(z, wasm_f32x4_sub(one, s))));
          wasm_v128_store(dxb + o + ch, d);
        }
        v128_t dlo = wasm_f64x2_promote_low_f32x4(d);
        v128_t dhi = wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(d, d, 2, 3, 0, 1));
        v128_t dx_ = wasm_f32x4_mul(d, xv);
        v128_t plo = wasm_f64x2_promote_low_f32x4(dx_);
        v128_t phi = wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(dx_, dx_, 2, 3, 0, 1));
        wasm_v128_store(sum_dz + ch, wasm_f64x2_add(wasm_v128_load(sum_dz + ch), dlo));
        wasm_v128_store(sum_dz + ch + 2, wasm_f64x2_add(wasm_v128_load(sum_dz + ch + 2), dhi));
        wasm_v128_store(sum_dzx + ch, wasm_f64x2_add(wasm_v128_load(sum_dzx + ch), plo));
        wasm_v128_store(sum_dzx + ch + 2, wasm_f64x2_add(wasm_v128_load(sum_dzx + ch + 2), phi));
      }
      for (; ch < c; ch++) {
        f32 xv = xb[o + ch];
        f32 d = dyb[o + ch];
        if (swish) {
          f32 z = xv * scale[ch] + shift[ch];
          f32 s = sigmoid1(z);
          d = d * s * (1.0f + z * (1.0f - s));
          dxb[o + ch] = d;
        }
        sum_dz[ch] += d;
        sum_dzx[ch] += (f64)(d * xv);
      }
    }
    /* Per group: dx = dz (r gamma) + x (-r^2 m2) + (r^2 m2 mean - r m1). */
    for (uint32_t g = 0; g < groups; g++) {
      f64 m = mean[b * groups + g];
      f64 r = rstd[b * groups + g];
      f64 s1 = 0, s2 = 0;
      for (uint32_t ch = g * cg; ch < (g + 1) * cg; ch++) {
        f64 dz_xhat = r * (sum_dzx[ch] - m * sum_dz[ch]);
        acc_dgamma[ch] += dz_xhat;
        acc_dbeta[ch] += sum_dz[ch];
        s1 += gamma[ch] * sum_dz[ch];
        s2 += gamma[ch] * dz_xhat;
      }
      f64 m1 = s1 / count;
      f64 m2 = s2 / count;
      for (uint32_t ch = g * cg; ch < (g + 1) * cg; ch++) {
        ca[ch] = (f32)(r * gamma[ch]);
        cb[ch] = (f32)(-r * r * m2);
        ck[ch] = (f32)(r * r * m2 * m - r * m1);
      }
    }
    /* Pass 2. */
    for (uint32_t p = 0; p < hw; p++) {
      uintptr_t o = (uintptr_t)p * c;
      uint32_t ch = 0;
      for (; ch < c4; ch += 4) {
        v128_t v = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(dz + o + ch), wasm_v128_load(ca + ch)),
                                  wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(xb + o + ch), wasm_v128_load(cb + ch)), wasm_v128_load(ck + ch)));
        wasm_v128_store(dxb + o + ch, v);
      }
      for (; ch < c; ch++) dxb[o + ch] = dz[o + ch] * ca[ch] + (xb[o + ch] * cb[ch] + ck[ch]);
    }
  }
  for (uint32_t ch = 0; ch < c; ch++) {
    dgamma[ch] = (f32)acc_dgamma[ch];
    dbeta[ch] = (f32)acc_dbeta[ch];
  }
}

/* y = x sigmoid(x) over len floats. */
EXPORT(swish_forward)
void swish_forward(const f32 *__restrict x, uint32_t len, f32 *__restrict y) {
  uint32_t i = 0;
  for (; i + 4 <= len; i += 4) {
    v128_t v = wasm_v128_load(x + i);
    wasm_v128_store(y + i, wasm_f32x4_mul(v, sigmoid4(v)));
  }
  for (; i < len; i++) y[i] = x[i] * sigmoid1(x[i]);
}

/* dx = dy s (1 + x (1 - s)), s = sigmoid(x), over len floats. */
EXPORT(swish_backward)
void swish_backward(const f32 *__restrict dy, const f32 *__restrict x, uint32_t len, f32 *__restrict dx) {
  v128_t one = wasm_f32x4_splat(1.0f);
  uint32_t i = 0;
  for (; i + 4 <= len; i += 4) {
    v128_t v = wasm_v128_load(x + i);
    v128_t s = sigmoid4(v);
    wasm_v128_store(dx + i, wasm_f32x4_mul(wasm_f32x4_mul(wasm_v128_load(dy + i), s), wasm_f32x4_add(one, wasm_f32x4_mul(v, wasm_f32x4_sub(one, s)))));
  }
  for (; i < len; i++) {
    f32 s = sigmoid1(x[i]);
    dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
  }
}

/* out[c] = sum over rows of x[rows, cols] (f64 sums, rows in order). scratch: cols f64. */
EXPORT(sum_rows)
void sum_rows(const f32 *__restrict x, uint32_t rows, uint32_t cols, f32 *__restrict out, f64 *__restrict scratch) {
  for (uint32_t j = 0; j < cols; j++) scratch[j] = 0;
  uint32_t c4 = cols & ~3u;
  for (uint32_t r = 0; r < rows; r++) {
    const f32 *row = x + (uintptr_t)r * cols;
    uint32_t j = 0;
    for (; j < c4; j += 4) {
      v128_t v = wasm_v128_load(row + j);
      wasm_v128_store(scratch + j, wasm_f64x2_add(wasm_v128_load(scratch + j), wasm_f64x2_promote_low_f32x4(v)));
      wasm_v128_store(scratch + j + 2, wasm_f64x2_add(wasm_v128_load(scratch + j + 2), wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v, v, 2, 3, 0, 1))));
    }
    for (; j < cols; j++) scratch[j] += row[j];
  }
  for (uint32_t j = 0; j < cols; j++) out[j] = (f32)scratch[j];
}
