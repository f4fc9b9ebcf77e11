// Q6_K (210-byte super-blocks of 256), two super-blocks (420 bytes, 105 words) per
// invocation. ggml quantize_row_q6_K_ref (make_qx_quants, nmax 32, rmse_type 1) /
// dequantize_row_q6_K; CPU spec kernels/src/quant/{q6_k.rs,k_search.rs}.
const GROUP_BLOCKS: u32 = 2u;
const GROUP_WORDS: u32 = 105u;
var<private> ow: array<u32, 105>;
var<private> L: array<i32, 256>;

fn qx_quant(iscale: f32, v: f32) -> i32 {
    return clamp(nearest_int(fmul(iscale, v)), -32, 31);
}

// (sumlx, suml2) of make_qx_quants for one inverse scale over qsrc[xb..xb+16].
fn qx_sums(xb: u32, iscale: f32) -> vec2<f32> {
    var sumlx = 0.0;
    var suml2 = 0.0;
    for (var i = 0u; i < 16u; i = i + 1u) {
        let v = qsrc[xb + i];
        let l = f32(qx_quant(iscale, v));
        let w = fmul(v, v);
        sumlx = fadd(sumlx, fmul(fmul(w, v), l));
        suml2 = fadd(suml2, fmul(fmul(w, l), l));
    }
    return vec2<f32>(sumlx, suml2);
}

// make_qx_quants(16, 32, x, L, rmse_type = 1) over qsrc[xb..xb+16], quants into L[lo..].
fn make_qx(xb: u32, lo: u32) -> f32 {
    let am = signed_absmax(xb, 16u);
    let mx = am.y;
    if (am.x < 1e-15) {
        for (var i = 0u; i < 16u; i = i + 1u) {
            L[lo + i] = 0;
        }
        return 0.0;
    }
    var iscale = div_rn(-32.0, mx);
    for (var i = 0u; i < 16u; i = i + 1u) {
        L[lo + i] = qx_quant(iscale, qsrc[xb + i]) + 32;
    }
    let s0 = qx_sums(xb, iscale);
    var scale = 0.0;
    if (s0.y != 0.0) {
        scale = div_rn(s0.x, s0.y);
    }
    var best = fmul(scale, s0.x);
    for (var is = -9; is <= 9; is = is + 1) {
        if (is == 0) {
            continue;
        }
        iscale = div_rn(-fadd(32.0, fmul(0.1, ox(f32(is)))), mx);
        let s = qx_sums(xb, iscale);
        if (s.y > 0.0 && fmul(s.x, s.x) > fmul(best, s.y)) {
            for (var i = 0u; i < 16u; i = i + 1u) {
                L[lo + i] = qx_quant(iscale, qsrc[xb + i]) + 32;
            }
            scale = div_rn(s.x, s.y);
            best = fmul(scale, s.x);
        }
    }
    return scale;
}

// Group g of the quantize entry point (shaders/entry.wgsl): ow is cleared, stored after.
fn quantize_group(g: u32) {
    for (var b = 0u; b < GROUP_BLOCKS; b = b + 1u) {
        let base = (g * GROUP_BLOCKS + b) * 256u;
        let o = b * 210u;
        var scales: array<f32, 16>;
        var max_scale = 0.0;
        var max_abs_scale = 0.0;
        for (var ib = 0u; ib < 16u; ib = ib + 1u) {
            let s = make_qx(base + 16u * ib, 16u * ib);
            scales[ib] = s;
            if (abs(s) > max_abs_scale) {
                max_abs_scale = abs(s);
                max_scale = s;
            }
        }
        if (max_abs_scale < 1e-15) {
            // An all-zero block (already cleared).
            continue;
        }
        let iscale = div_rn(-128.0, max_scale);
        let dh = f32_to_f16(div_rn(1.0, iscale));
        let df = f16_to_f32(dh);
        for (var ib = 0u; ib < 16u; ib = ib + 1u) {
            let sc = min(nearest_int(fmul(iscale, scales[ib])), 127);
            put(o + 192u + ib, u32(sc));
            let dj = fmul(df, f32(sext8(u32(sc))));
            if (dj == 0.0) {
                continue;
            }
            for (var i = 0u; i < 16u; i = i + 1u) {
                let v = qsrc[base + 16u * ib + i];
                L[16u * ib + i] = clamp(nearest_int(div_rn(v, dj)), -32, 31) + 32;
            }
        }
        put16(o + 208u, dh);
        for (var h = 0u; h < 2u; h = h + 1u) {
            for (var i = 0u; i < 32u; i = i + 1u) {
                let q0 = u32(L[128u * h + i]) & 0xffu;
                let q1 = u32(L[128u * h + i + 32u]) & 0xffu;
                let q2 = u32(L[128u * h + i + 64u]) & 0xffu;
                let q3 = u32(L[128u * h + i + 96u]) & 0xffu;
                put(o + 64u * h + i, (q0 & 15u) | ((q2 & 15u) << 4u));
                put(o + 64u * h + i + 32u, (q1 & 15u) | ((q3 & 15u) << 4u));
                put(o + 128u + 32u * h + i, (q0 >> 4u) | ((q1 >> 4u) << 2u) | ((q2 >> 4u) << 4u) | ((q3 >> 4u) << 6u));
            }
        }
    }
}

// Group g of the dequantize entry point (shaders/entry.wgsl).
fn dequantize_group(g: u32) {
    for (var b = 0u; b < GROUP_BLOCKS; b = b + 1u) {
        let blk = g * GROUP_BLOCKS + b;
        let o = blk * 210u;
        let d = f16_to_f32(g16(o + 208u));
        for (var e = 0u; e < 256u; e = e + 1u) {
            let hf = e / 128u;
            let r = e % 128u;
            let low = (gb(o + 64u * hf + r % 64u) >> (4u * (r / 64u))) & 15u;
            let high = (gb(o + 128u + 32u * hf + r % 32u) >> (2u * (r / 32u))) & 3u;
            let q = i32(low | (high << 4u)) - 32;
            let dl = fmul(d, f32(sext8(gb(o + 192u + e / 16u))));
            ddst[blk * 256u + e] = fmul(dl, f32(q));
        }
    }
}
