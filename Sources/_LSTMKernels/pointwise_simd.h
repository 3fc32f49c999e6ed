// The vectorized element-wise passes, written once over a vector width and included by pointwise.c twice: for
// AVX2 (8 lanes, `_avx2` names) and for AVX-512 (16 lanes, `_avx512` names). The includer defines the vector type
// V, the mask type VM, the lane count VW, the name suffix SFX, the function attributes SIMD_INLINE / SIMD_FN, and
// the operations below (each one IEEE operation per lane, or a bit operation). Both widths perform the operations
// of the portable code in its order, so every width gives the same bits.

#define SIMD_NAME2(a, b) a##b
#define SIMD_NAME1(a, b) SIMD_NAME2(a, b)
#define S(name) SIMD_NAME1(name, SFX)

// The functions work on nv independent vectors at once (nv = 1…4, a constant at every call): each step is written
// for the nv side by side. One vector's pass through the forward step is a chain of ~150 cycles of latency (five
// exp/divide chains, one after the other), so one at a time leaves the FMA pipes mostly idle; four interleaved fill
// them. Per element the operations are the same for every nv (and those of the portable code), so the bits are the
// same.
// `clamp` 0: the caller's x is already in [EXP_LO, EXP_HI] and not NaN (tanh's 2·min(|x|, 44)), where the clamp is
// the identity: two operations fewer on the pass's busiest ports, the same bits.
SIMD_INLINE void S(exp_n)(V *x, const int nv, const int clamp) {
    V n[NV], r[NV], p[NV];
    if (clamp)
        for (int v = 0; v < nv; v++) x[v] = MIN(MAX(x[v], SET1(EXP_LO)), SET1(EXP_HI));
    for (int v = 0; v < nv; v++) n[v] = ROUND_NEAREST(MUL(x[v], SET1(LOG2E)));
    for (int v = 0; v < nv; v++) r[v] = FMADD(n[v], SET1(-LN2_HI), x[v]);
    for (int v = 0; v < nv; v++) r[v] = FMADD(n[v], SET1(-LN2_LO), r[v]);
    for (int v = 0; v < nv; v++) p[v] = FMADD(SET1(P0), r[v], SET1(P1));
    for (int v = 0; v < nv; v++) p[v] = FMADD(p[v], r[v], SET1(P2));
    for (int v = 0; v < nv; v++) p[v] = FMADD(p[v], r[v], SET1(P3));
    for (int v = 0; v < nv; v++) p[v] = FMADD(p[v], r[v], SET1(P4));
    for (int v = 0; v < nv; v++) p[v] = FMADD(p[v], r[v], SET1(P5));
    for (int v = 0; v < nv; v++) {
        const V z = MUL(r[v], r[v]);
        const V y = ADD(FMADD(p[v], z, r[v]), SET1(1.0f));
        x[v] = SCALE2N(y, n[v]);
    }
}

SIMD_INLINE void S(sigmoid_n)(V *z, const int nv) {
    const V one = SET1(1.0f);
    V e[NV];
    for (int v = 0; v < nv; v++) e[v] = SUB(ZERO(), z[v]);
    S(exp_n)(e, nv, 1);
    for (int v = 0; v < nv; v++) z[v] = DIV(one, ADD(one, e[v]));
}

// y[v] = tanh(x[v]); y may be x.
SIMD_INLINE void S(tanh_n)(const V *x, V *y, const int nv) {
    V e[NV];
    for (int v = 0; v < nv; v++) e[v] = MUL(SET1(2.0f), MIN(ABS(x[v]), SET1(44.0f)));
    S(exp_n)(e, nv, 0);
    for (int v = 0; v < nv; v++) {
        const V ax = ABS(x[v]);
        const V z = MUL(x[v], x[v]);
        V p = SET1(T0);
        p = FMADD(p, z, SET1(T1));
        p = FMADD(p, z, SET1(T2));
        p = FMADD(p, z, SET1(T3));
        p = FMADD(p, z, SET1(T4));
        const V small = FMADD(MUL(p, z), x[v], x[v]);
        const V t = SUB(SET1(1.0f), DIV(SET1(2.0f), ADD(e[v], SET1(1.0f))));
        y[v] = SELECT(CMP_LT(ax, SET1(0.625f)), small, COPYSIGN(t, x[v]));
    }
}

SIMD_INLINE V S(sigmoid)(V z) { S(sigmoid_n)(&z, 1); return z; }

SIMD_INLINE V S(tanh)(V x) { S(tanh_n)(&x, &x, 1); return x; }

SIMD_INLINE void S(gate_n)(V *z, const int nv, int kind) {
    switch (kind) {
    case 0: S(sigmoid_n)(z, nv); return;
    case 1:
        for (int v = 0; v < nv; v++) z[v] = MIN(MAX(ADD(DIV(z[v], SET1(6.0f)), SET1(0.5f)), ZERO()), SET1(1.0f));
        return;
    default: return;
    }
}

// y[v] = the cell activation of x[v]; y may be x.
SIMD_INLINE void S(cell_n)(const V *x, V *y, const int nv, int kind) {
    if (kind == 0) { S(tanh_n)(x, y, nv); return; }
    for (int v = 0; v < nv; v++) y[v] = x[v];
}

SIMD_INLINE V S(clip)(V s, float clip) {
    const V hi = SET1(clip), lo = SET1(-clip);
    s = SELECT(CMP_LT(s, lo), lo, s);
    return SELECT(CMP_GT(s, hi), hi, s);
}

// The forward element-wise pass of nv vectors of VW units: vector v's gates at z[v] + q·zs, its S_{t−1}, S_t and h
// at cp[v], cb[v], hb[v], its peepholes (when peep) at peep[v] + q·ps; the activated gates written back only when
// `store` (the training stash keeps them; inference does not).
// Peepholes (Gers & Schmidhuber): i and f see S_{t-1}, o sees S_t: z_i += p_i ⊙ S_{t-1}, z_f += p_f ⊙ S_{t-1},
// z_o += p_o ⊙ S_t (a product, then a sum, in every path).
SIMD_INLINE void S(forward_n)(float *const *z, ptrdiff_t zs, const float *const *cp, float *const *cb,
                              float *const *hb, const int nv, int gate, int cell, float clip,
                              const float *const *peep, ptrdiff_t ps, int store) {
    V c[NV], i[NV], f[NV], g[NV], o[NV], s[NV], t[NV];
    for (int v = 0; v < nv; v++) {
        c[v] = LOADU(cp[v]);
        i[v] = LOADU(z[v]); f[v] = LOADU(z[v] + zs);
        g[v] = LOADU(z[v] + 2 * zs); o[v] = LOADU(z[v] + 3 * zs);
        if (peep) {
            i[v] = ADD(i[v], MUL(LOADU(peep[v]), c[v]));
            f[v] = ADD(f[v], MUL(LOADU(peep[v] + ps), c[v]));
        }
    }
    S(gate_n)(i, nv, gate);
    S(gate_n)(f, nv, gate);
    S(cell_n)(g, g, nv, cell);
    for (int v = 0; v < nv; v++) {
        s[v] = ADD(MUL(f[v], c[v]), MUL(i[v], g[v]));
        if (clip > 0.0f) s[v] = S(clip)(s[v], clip);
        if (peep) o[v] = ADD(o[v], MUL(LOADU(peep[v] + 2 * ps), s[v]));
    }
    S(gate_n)(o, nv, gate);
    S(cell_n)(s, t, nv, cell);
    for (int v = 0; v < nv; v++) {
        if (store) {
            STOREU(z[v], i[v]); STOREU(z[v] + zs, f[v]);
            STOREU(z[v] + 2 * zs, g[v]); STOREU(z[v] + 3 * zs, o[v]);
        }
        STOREU(cb[v], s[v]);
        STOREU(hb[v], MUL(o[v], t[v]));
    }
}

// Units from..<H of z (gate q of unit j at z[q·zs + j]), peepholes at peep[q·ps + j]: 4·VW units at a time, then
// VW; the rest (from the returned unit on: where a narrower path takes over) is left.
SIMD_FN ptrdiff_t S(forward_row)(float *z, ptrdiff_t zs, const float *cp, float *cb, float *hb, ptrdiff_t from,
                                 ptrdiff_t H, int gate, int cell, float clip, const float *peep, ptrdiff_t ps,
                                 int store) {
    ptrdiff_t j = from;
    float *zv[NV], *cbv[NV], *hbv[NV];
    const float *cpv[NV], *pv[NV];
    for (; j + VW <= H; ) {
        const int nv = j + 4 * VW <= H ? 4 : 1;
        for (int v = 0; v < nv; v++) {
            zv[v] = z + j + VW * v; cpv[v] = cp + j + VW * v; cbv[v] = cb + j + VW * v; hbv[v] = hb + j + VW * v;
            pv[v] = peep ? peep + j + VW * v : NULL;
        }
        if (nv == 4) S(forward_n)(zv, zs, cpv, cbv, hbv, 4, gate, cell, clip, peep ? pv : NULL, ps, store);
        else S(forward_n)(zv, zs, cpv, cbv, hbv, 1, gate, cell, clip, peep ? pv : NULL, ps, store);
        j += VW * nv;
    }
    return j;
}

// Rows from..<rows of 16 units (a group of the gate-interleaved layout), 4·VW units at a time: 16 / VW vectors per
// row, 4·VW / 16 rows. Returns the first row not done (at most 4·VW / 16 − 1 are left).
SIMD_FN ptrdiff_t S(forward_group_rows)(float *z, ptrdiff_t ldz, ptrdiff_t zs, float *c, ptrdiff_t ldc, float *h,
                                        ptrdiff_t ldh, ptrdiff_t from, ptrdiff_t rows, int gate, int cell, float clip,
                                        const float *peep, ptrdiff_t ps) {
    enum { PER_ROW = 16 / VW, ROWS = NV / PER_ROW };
    ptrdiff_t r = from;
    for (; r + ROWS <= rows; r += ROWS) {
        float *zv[NV], *cbv[NV], *hbv[NV];
        const float *cpv[NV], *pv[NV];
        for (int v = 0; v < NV; v++) {
            const ptrdiff_t row = r + v / PER_ROW, j = VW * (v % PER_ROW);
            zv[v] = z + row * ldz + j; cbv[v] = c + row * ldc + j; cpv[v] = cbv[v]; hbv[v] = h + row * ldh + j;
            pv[v] = peep ? peep + j : NULL;
        }
        S(forward_n)(zv, zs, cpv, cbv, hbv, NV, gate, cell, clip, peep ? pv : NULL, ps, 0);
    }
    return r;
}

SIMD_FN ptrdiff_t S(activation)(int function, const float *x, float *y, ptrdiff_t from, ptrdiff_t n) {
    ptrdiff_t k = from;
    for (; k + VW <= n; k += VW) {
        const V v = LOADU(x + k);
        STOREU(y + k, function == 0 ? S(sigmoid)(v) : S(tanh)(v));
    }
    return k;
}

SIMD_INLINE V S(gate_derivative)(V a, int kind) {
    switch (kind) {
    case 0: return MUL(a, SUB(SET1(1.0f), a));
    case 1: return SELECT(MASK_AND(CMP_GT(a, ZERO()), CMP_LT(a, SET1(1.0f))), SET1(1.0f / 6.0f), ZERO());
    default: return SET1(1.0f);
    }
}

// The backward element-wise pass over whole vectors of units from..<H of one row (gate stride H); returns the
// first unit not done.
SIMD_FN ptrdiff_t S(backward_row)(const float *a, const float *cprev, const float *c, const float *dout,
                                  const float *dcarry, float *dc, float *dz, ptrdiff_t from, ptrdiff_t H, int gate,
                                  int cell, float clip, const float *peep) {
    const V one = SET1(1.0f);
    ptrdiff_t j = from;
    for (; j + VW <= H; j += VW) {
        const V i = LOADU(a + j), f = LOADU(a + H + j);
        const V g = LOADU(a + 2 * H + j), o = LOADU(a + 3 * H + j);
        V dh = LOADU(dcarry + j);
        if (dout) dh = ADD(LOADU(dout + j), dh);
        const V s = LOADU(c + j);
        const V tc = cell == 0 ? S(tanh)(s) : s;
        const V dzo = MUL(MUL(dh, tc), S(gate_derivative)(o, gate));
        V dho = MUL(dh, o);
        if (cell == 0) dho = MUL(dho, SUB(one, MUL(tc, tc)));
        V dS = ADD(dho, LOADU(dc + j));
        if (peep) dS = ADD(dS, MUL(dzo, LOADU(peep + 2 * H + j)));
        if (clip > 0.0f) dS = SELECT(MASK_OR(CMP_LE(s, SET1(-clip)), CMP_GE(s, SET1(clip))), ZERO(), dS);
        const V dzi = MUL(MUL(dS, g), S(gate_derivative)(i, gate));
        const V dzf = MUL(MUL(dS, LOADU(cprev + j)), S(gate_derivative)(f, gate));
        STOREU(dz + j, dzi);
        STOREU(dz + H + j, dzf);
        V dg = MUL(dS, i);
        if (cell == 0) dg = MUL(dg, SUB(one, MUL(g, g)));
        STOREU(dz + 2 * H + j, dg);
        STOREU(dz + 3 * H + j, dzo);
        V carry = MUL(dS, f);
        if (peep) {
            carry = ADD(carry, MUL(dzi, LOADU(peep + j)));
            carry = ADD(carry, MUL(dzf, LOADU(peep + H + j)));
        }
        STOREU(dc + j, carry);
    }
    return j;
}

#undef S
#undef SIMD_NAME1
#undef SIMD_NAME2
