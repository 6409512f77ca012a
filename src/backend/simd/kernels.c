/*
 * WebAssembly SIMD kernels that run on tfjs-backend-wasm's own memory (the module imports it), for
 * src/backend/simdKernels.ts. Built by src/backend/simd/build.js (clang --target=wasm32
 * -msimd128) into src/backend/simd/kernelsWasm.ts; the build is checked in, so nothing here is
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

/*
 * One block of the convolution weight gradient for one tap, summed over the output positions
 * (b, y, xx) with b in [b0, b1), y in [y0, y1), xx in [x0, x1), in that order, into out (the tap's
 * [c, o] slice), added to what out holds unless b0 = 0.
 * (dyo, dxo) = (i - pad_top, j - pad_left): the input row and column the tap reads at output
 * (0, 0). Two layouts of the f32x4 sums:
 *  - VEC_O: CB (1 or 4) input channels from ci by OB (8, 4 or 1) output channels from co, o along
 *    the lanes (OB 1: lane 0 alone);
 *  - VEC_C: output channel co by CB (16 or 4) input channels from ci, c along the lanes: for the
 *    outputs past the last multiple of 4 (x's rows are contiguous in c).
 * CB, OB and the layout are constants after inlining, so the sums live in registers (build.js
 * refuses a build that spills them to the stack).
 */
enum { VEC_O, VEC_C };
static inline __attribute__((always_inline)) void filter_grad_block(
    const f32 *__restrict x, const f32 *__restrict dy, uint32_t b0, uint32_t b1, uint32_t h, uint32_t w, uint32_t c, uint32_t oh, uint32_t ow,
    uint32_t o, uint32_t sh, uint32_t sw, int32_t dyo, int32_t dxo, uint32_t y0, uint32_t y1, uint32_t x0, uint32_t x1, uint32_t ci, uint32_t co,
    f32 *__restrict out, const int layout, const int CB, const int OB) {
  const int rows = layout == VEC_O ? CB : CB / 4;
  const int vecs = layout == VEC_O ? (OB + 3) / 4 : 1;
  v128_t acc[4][2];
  for (int k = 0; k < rows; k++) {
    f32 *at = out + (uintptr_t)(ci + (layout == VEC_C ? 4 * k : k)) * o + co;
    for (int v = 0; v < vecs; v++) {
      // Examples after the first chunk continue the sums where the last chunk left them.
      acc[k][v] = b0 == 0 ? wasm_f32x4_splat(0.0f)
                : layout == VEC_C ? wasm_f32x4_make(at[0], at[o], at[2 * o], at[3 * o])
                : OB == 1 ? wasm_v128_load32_splat(at) : wasm_v128_load(at + 4 * v);
    }
  }
  uintptr_t xstep = (uintptr_t)sw * c;
  for (uint32_t b = b0; b < b1; b++) {
    for (uint32_t y = y0; y < y1; y++) {
      const f32 *xp = x + ((((uintptr_t)b * h + (uint32_t)((int32_t)(y * sh) + dyo)) * w + (uint32_t)((int32_t)(x0 * sw) + dxo)) * c + ci);
      const f32 *dp = dy + (((uintptr_t)b * oh + y) * ow + x0) * o + co;
      for (uint32_t xx = x0; xx < x1; xx++, xp += xstep, dp += o) {
        if (layout == VEC_C) {
          v128_t d = wasm_v128_load32_splat(dp);
          for (int k = 0; k < rows; k++) acc[k][0] = wasm_f32x4_add(acc[k][0], wasm_f32x4_mul(wasm_v128_load(xp + 4 * k), d));
          continue;
        }
        v128_t d0 = OB == 1 ? wasm_v128_load32_splat(dp) : wasm_v128_load(dp);
        v128_t d1 = OB == 8 ? wasm_v128_load(dp + 4) : d0;
        for (int k = 0; k < rows; k++) {
          v128_t xv = wasm_v128_load32_splat(xp + k);
          acc[k][0] = wasm_f32x4_add(acc[k][0], wasm_f32x4_mul(xv, d0));
          if (OB == 8) acc[k][1] = wasm_f32x4_add(acc[k][1], wasm_f32x4_mul(xv, d1));
        }
      }
    }
  }
  for (int k = 0; k < rows; k++) {
    if (layout == VEC_C) {
      f32 *col = out + (uintptr_t)(ci + 4 * k) * o + co;
      col[0] = wasm_f32x4_extract_lane(acc[k][0], 0);
      col[o] = wasm_f32x4_extract_lane(acc[k][0], 1);
      col[2 * o] = wasm_f32x4_extract_lane(acc[k][0], 2);
      col[3 * o] = wasm_f32x4_extract_lane(acc[k][0], 3);
    } else if (OB == 1) {
      out[(uintptr_t)(ci + k) * o + co] = wasm_f32x4_extract_lane(acc[k][0], 0);
    } else {
      for (int v = 0; v < vecs; v++) wasm_v128_store(out + (uintptr_t)(ci + k) * o + co + 4 * v, acc[k][v]);
    }
  }
}

/* First output index q with q * s + off >= 0, and one past the last with q * s + off < size (at most
 * count): the output rows (or columns) at which a tap reads inside the input. */
static inline uint32_t first_inside(int32_t off, uint32_t s) {
  return off >= 0 ? 0 : (uint32_t)(-off + (int32_t)s - 1) / s;
}
static inline uint32_t end_inside(int32_t off, uint32_t s, uint32_t size, uint32_t count) {
  int32_t last = (int32_t)size - 1 - off;
  if (last < 0) return 0;
  uint32_t end = (uint32_t)last / s + 1;
  return end < count ? end : count;
}

/*
 * The convolution's weight gradient, NHWC: dw[i, j, ci, co] = sum over (b, y, xx) of
 * x[b, y*sh + i - pt, xx*sw + j - pl, ci] dy[b, y, xx, co], input positions outside x skipped (they
 * are the zero padding), each sum in f32 over (b, y, xx) in order, whatever `chunk` (examples per
 * pass, at least 1). x [n, h, w, c], dy [n, oh, ow, o], dw [kh, kw, c, o]. Blocks of 4 input by 8
 * (or 4) output channels keep their sums in f32x4 registers; output channels past the last multiple
 * of 4 take input channels 16 or 4 at a time.
 */
EXPORT(conv_filter_grad)
void conv_filter_grad(const f32 *__restrict x, const f32 *__restrict dy, uint32_t n, uint32_t h, uint32_t w, uint32_t c, uint32_t oh, uint32_t ow,
                      uint32_t o, uint32_t kh, uint32_t kw, uint32_t sh, uint32_t sw, uint32_t pt, uint32_t pl, uint32_t chunk, f32 *__restrict dw) {
  /* Examples in chunks (the caller sizes them to fit a cache), so that the k*k*(c/4)*(o/8) passes
   * over a chunk read it from cache; each sum still runs over (b, y, xx) in order. */
  for (uint32_t b0 = 0; b0 < n; b0 += chunk) {
    uint32_t b1 = n - b0 < chunk ? n : b0 + chunk;
    for (uint32_t i = 0; i < kh; i++) {
      int32_t dyo = (int32_t)i - (int32_t)pt;
      uint32_t y0 = first_inside(dyo, sh);
      uint32_t y1 = end_inside(dyo, sh, h, oh);
      for (uint32_t j = 0; j < kw; j++) {
        int32_t dxo = (int32_t)j - (int32_t)pl;
        uint32_t x0 = first_inside(dxo, sw);
        uint32_t x1 = end_inside(dxo, sw, w, ow);
        if (y1 < y0) y1 = y0;
        if (x1 < x0) x1 = x0;
        f32 *out = dw + (uintptr_t)(i * kw + j) * c * o;
        uint32_t o8 = o & ~7u;
        uint32_t o4 = o & ~3u;
#define BLOCK(ci, co, layout, CB, OB) filter_grad_block(x, dy, b0, b1, h, w, c, oh, ow, o, sh, sw, dyo, dxo, y0, y1, x0, x1, ci, co, out, layout, CB, OB)
        uint32_t ci = 0;
        for (; ci + 4 <= c; ci += 4) {
          for (uint32_t co = 0; co < o8; co += 8) BLOCK(ci, co, VEC_O, 4, 8);
          if (o8 < o4) BLOCK(ci, o8, VEC_O, 4, 4);
        }
        for (; ci < c; ci++) {
          for (uint32_t co = 0; co < o8; co += 8) BLOCK(ci, co, VEC_O, 1, 8);
          if (o8 < o4) BLOCK(ci, o8, VEC_O, 1, 4);
        }
        for (uint32_t co = o4; co < o; co++) {
          for (ci = 0; ci + 16 <= c; ci += 16) BLOCK(ci, co, VEC_C, 16, 1);
          for (; ci + 4 <= c; ci += 4) BLOCK(ci, co, VEC_C, 4, 1);
          for (; ci < c; ci++) BLOCK(ci, co, VEC_O, 1, 1);
        }
#undef BLOCK
      }
    }
  }
}

/*
 * out [n, hp, wp, c] = x [n, h, w, c] placed at (top, left) with dh - 1 (dw - 1) zero rows
 * (columns) between neighbours, zeros elsewhere; rows and columns past hp, wp dropped. The input of
 * conv_valid for a padded convolution (dh = dw = 1) and for a strided one's input gradient.
 */
EXPORT(pad_dilate)
void pad_dilate(const f32 *__restrict x, uint32_t n, uint32_t h, uint32_t w, uint32_t c, uint32_t dh, uint32_t dw, uint32_t top, uint32_t left,
                uint32_t hp, uint32_t wp, f32 *__restrict out) {
  uintptr_t total = (uintptr_t)n * hp * wp * c;
  v128_t zero = wasm_f32x4_splat(0.0f);
  uintptr_t e = 0;
  for (; e + 4 <= total; e += 4) wasm_v128_store(out + e, zero);
  for (; e < total; e++) out[e] = 0;
  uint32_t c4 = c & ~3u;
  for (uint32_t b = 0; b < n; b++) {
    for (uint32_t y = 0; y < h && top + y * dh < hp; y++) {
      for (uint32_t xx = 0; xx < w && left + xx * dw < wp; xx++) {
        const f32 *src = x + (((uintptr_t)b * h + y) * w + xx) * c;
        f32 *dst = out + (((uintptr_t)b * hp + top + y * dh) * wp + left + xx * dw) * c;
        uint32_t ch = 0;
        for (; ch < c4; ch += 4) wasm_v128_store(dst + ch, wasm_v128_load(src + ch));
        for (; ch < c; ch++) dst[ch] = src[ch];
      }
    }
  }
}

/*
 * P output positions (consecutive columns from ox) by OB output channels from co (8 or 4: o along
 * the lanes; 1: lane 0 alone) of conv_valid over input channels [c0, c1), each sum started at the
 * bias (c0 = 0) or at what yb holds, and run over (i, j, ci) in that order, into yb (example b's
 * output [oh, ow, o]). P, OB constants after inlining: the sums stay in registers.
 */
static inline __attribute__((always_inline)) void conv_block(
    const f32 *__restrict x, uint32_t h, uint32_t w, uint32_t c, const f32 *__restrict wt, uint32_t kh, uint32_t kw, uint32_t o,
    uint32_t sh, uint32_t sw, const f32 *__restrict bias, uint32_t b, uint32_t oy, uint32_t ox, uint32_t co, uint32_t ow, f32 *__restrict yb,
    uint32_t c0, uint32_t c1, const int P, const int OB) {
  const int vecs = (OB + 3) / 4;
  v128_t acc[4][2];
  for (int p = 0; p < P; p++) {
    f32 *at = yb + ((uintptr_t)oy * ow + ox + p) * o + co;
    for (int v = 0; v < vecs; v++) {
      // Channels after the first chunk continue the sums where the last chunk left them.
      acc[p][v] = c0 > 0 ? (OB == 1 ? wasm_v128_load32_splat(at) : wasm_v128_load(at + 4 * v))
                : bias == 0 ? wasm_f32x4_splat(0.0f) : OB == 1 ? wasm_v128_load32_splat(bias + co) : wasm_v128_load(bias + co + 4 * v);
    }
  }
  uintptr_t pstep = (uintptr_t)sw * c;
  for (uint32_t i = 0; i < kh; i++) {
    for (uint32_t j = 0; j < kw; j++) {
      const f32 *xr = x + (((uintptr_t)b * h + oy * sh + i) * w + ox * sw + j) * c;
      const f32 *wr = wt + ((uintptr_t)(i * kw + j) * c + c0) * o + co;
      for (uint32_t ci = c0; ci < c1; ci++, wr += o) {
        v128_t w0 = OB == 1 ? wasm_v128_load32_splat(wr) : wasm_v128_load(wr);
        v128_t w1 = OB == 8 ? wasm_v128_load(wr + 4) : w0;
        for (int p = 0; p < P; p++) {
          v128_t xv = wasm_v128_load32_splat(xr + p * pstep + ci);
          acc[p][0] = wasm_f32x4_add(acc[p][0], wasm_f32x4_mul(xv, w0));
          if (OB == 8) acc[p][1] = wasm_f32x4_add(acc[p][1], wasm_f32x4_mul(xv, w1));
        }
      }
    }
  }
  for (int p = 0; p < P; p++) {
    f32 *out = yb + ((uintptr_t)oy * ow + ox + p) * o + co;
    if (OB == 1) out[0] = wasm_f32x4_extract_lane(acc[p][0], 0);
    else for (int v = 0; v < vecs; v++) wasm_v128_store(out + 4 * v, acc[p][v]);
  }
}

/*
 * A valid convolution, NHWC: y[b, oy, ox, co] = bias[co] + sum over input-channel chunks, and in
 * each over (i, j, ci) in that order, of x[b, oy*sh + i, ox*sw + j, ci] w[i, j, ci, co] (a fixed
 * order for given shapes). x [n, h, w, c] (padded already: pad_dilate), w [kh, kw, c, o],
 * y [n, oh, ow, o]; bias: o floats, or 0 for none. Blocks of 4 output columns by 8 output
 * channels: each weight vector loaded serves 4 positions.
 */
EXPORT(conv_valid)
void conv_valid(const f32 *__restrict x, uint32_t n, uint32_t h, uint32_t w, uint32_t c, const f32 *__restrict wt, uint32_t kh, uint32_t kw,
                uint32_t o, uint32_t sh, uint32_t sw, const f32 *__restrict bias, uint32_t oh, uint32_t ow, f32 *__restrict y) {
  uint32_t o8 = o & ~7u;
  uint32_t o4 = o & ~3u;
  uint32_t ow4 = ow & ~3u;
  /* Input channels in chunks whose weights for one block of 8 outputs (16 KiB) stay in the L1
   * cache while the example's positions pass over them. */
  uint32_t chunk = 4096 / (kh * kw * 8);
  if (chunk < 4) chunk = 4;
#define CONV(ox, P, OB) conv_block(x, h, w, c, wt, kh, kw, o, sh, sw, bias, b, oy, ox, co, ow, yb, c0, c1, P, OB)
  /* A row: blocks of 4 columns, then its last 1-3 columns as one block. */
#define ROW(OB)                                              \
  do {                                                       \
    for (uint32_t ox = 0; ox < ow4; ox += 4) CONV(ox, 4, OB); \
    switch (ow - ow4) {                                      \
      case 3: CONV(ow4, 3, OB); break;                       \
      case 2: CONV(ow4, 2, OB); break;                       \
      case 1: CONV(ow4, 1, OB); break;                       \
    }                                                        \
  } while (0)
  for (uint32_t b = 0; b < n; b++) {
    f32 *yb = y + (uintptr_t)b * oh * ow * o;
    for (uint32_t co = 0; co < o; co = co < o8 ? co + 8 : co < o4 ? co + 4 : co + 1) {
      for (uint32_t c0 = 0; c0 < c; c0 += chunk) {
        uint32_t c1 = c - c0 < chunk ? c : c0 + chunk;
        for (uint32_t oy = 0; oy < oh; oy++) {
          if (co < o8) ROW(8);
          else if (co < o4) ROW(4);
          else ROW(1);
        }
      }
    }
  }
#undef ROW
#undef CONV
}
