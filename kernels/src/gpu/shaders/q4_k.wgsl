// Q4_K (144-byte super-blocks of 256), one super-block (36 words) per invocation.
// ggml quantize_row_q4_K_ref (make_qkx2_quants: nmax 15, rmin -1, rdelta 0.1, nstep 20,
// squared errors) / dequantize_row_q4_K; CPU spec kernels/src/quant/{q4_k.rs,k_search.rs},
// followed operation for operation (`fadd`/`fsub`/`fmul`, `div_rn`, `sqrt_rn`).
const GROUP_BLOCKS: u32 = 1u;
const GROUP_WORDS: u32 = 36u;
var<private> ow: array<u32, 36>;
var<private> L: array<u32, 256>;
var<private> W: array<f32, 32>;
var<private> LAUX: array<u32, 32>;

// make_qkx2_quants over qsrc[xb..xb+32] with weights W; quants into L[lo..lo+32].
// Returns (scale, -min).
fn make_qkx2(xb: u32, lo: u32) -> vec2<f32> {
    var mn = qsrc[xb];
    var mx = mn;
    var sum_w = W[0];
    var sum_x = fmul(sum_w, mn);
    for (var i = 1u; i < 32u; i = i + 1u) {
        let x = qsrc[xb + i];
        // Only mn's value matters here (its sign of zero never reaches the output), so a
        // driver turning these into fmin/fmax is harmless.
        if (x < mn) {
            mn = x;
        }
        if (x > mx) {
            mx = x;
        }
        let w = W[i];
        sum_w = fadd(sum_w, w);
        sum_x = fadd(sum_x, fmul(w, x));
    }
    if (mn > 0.0) {
        mn = 0.0;
    }
    if (mx == mn) {
        for (var i = 0u; i < 32u; i = i + 1u) {
            L[lo + i] = 0u;
        }
        return vec2<f32>(0.0, -mn);
    }
    var iscale = div_rn(15.0, fsub(mx, mn));
    var scale = div_rn(1.0, iscale);
    var best_error = 0.0;
    for (var i = 0u; i < 32u; i = i + 1u) {
        let x = qsrc[xb + i];
        let l = clamp(nearest_int(fmul(iscale, fsub(x, mn))), 0, 15);
        L[lo + i] = u32(l);
        let diff = fsub(fadd(fmul(scale, f32(l)), mn), x);
        best_error = fadd(best_error, fmul(W[i], fmul(diff, diff)));
    }
    for (var is = 0; is <= 20; is = is + 1) {
        iscale = div_rn(fadd(fadd(-1.0, fmul(0.1, ox(f32(is)))), 15.0), fsub(mx, mn));
        var sum_l = 0.0;
        var sum_l2 = 0.0;
        var sum_xl = 0.0;
        for (var i = 0u; i < 32u; i = i + 1u) {
            let x = qsrc[xb + i];
            let li = clamp(nearest_int(fmul(iscale, fsub(x, mn))), 0, 15);
            LAUX[i] = u32(li);
            let w = W[i];
            let l = f32(li);
            let wl = fmul(w, l);
            sum_l = fadd(sum_l, wl);
            sum_l2 = fadd(sum_l2, fmul(wl, l));
            sum_xl = fadd(sum_xl, fmul(wl, x));
        }
        let d = fsub(fmul(sum_w, sum_l2), fmul(sum_l, sum_l));
        if (d > 0.0) {
            var this_scale = div_rn(fsub(fmul(sum_w, sum_xl), fmul(sum_x, sum_l)), d);
            var this_min = div_rn(fsub(fmul(sum_l2, sum_x), fmul(sum_l, sum_xl)), d);
            if (this_min > 0.0) {
                this_min = 0.0;
                this_scale = div_rn(sum_xl, sum_l2);
            }
            var cur_error = 0.0;
            for (var i = 0u; i < 32u; i = i + 1u) {
                let diff = fsub(fadd(fmul(this_scale, f32(LAUX[i])), this_min), qsrc[xb + i]);
                cur_error = fadd(cur_error, fmul(W[i], fmul(diff, diff)));
            }
            if (cur_error < best_error) {
                for (var i = 0u; i < 32u; i = i + 1u) {
                    L[lo + i] = LAUX[i];
                }
                best_error = cur_error;
                scale = this_scale;
                mn = this_min;
            }
        }
    }
    return vec2<f32>(scale, -mn);
}

// Group g of the quantize entry point (shaders/entry.wgsl): ow is cleared, stored after.
fn quantize_group(g: u32) {
    let base = g * 256u;
    var scales: array<f32, 8>;
    var mins: array<f32, 8>;
    var max_scale = 0.0;
    var max_min = 0.0;
    for (var j = 0u; j < 8u; j = j + 1u) {
        let xb = base + 32u * j;
        var sum_x2 = 0.0;
        for (var i = 0u; i < 32u; i = i + 1u) {
            let v = qsrc[xb + i];
            sum_x2 = fadd(sum_x2, fmul(v, v));
        }
        let av_x = sqrt_rn(div_rn(sum_x2, 32.0));
        for (var i = 0u; i < 32u; i = i + 1u) {
            W[i] = fadd(av_x, abs(qsrc[xb + i]));
        }
        let sm = make_qkx2(xb, 32u * j);
        scales[j] = sm.x;
        mins[j] = sm.y;
        if (sm.x > max_scale) {
            max_scale = sm.x;
        }
        if (sm.y > max_min) {
            max_min = sm.y;
        }
    }
    var inv_scale = 0.0;
    if (max_scale > 0.0) {
        inv_scale = div_rn(63.0, max_scale);
    }
    var inv_min = 0.0;
    if (max_min > 0.0) {
        inv_min = div_rn(63.0, max_min);
    }
    var ls_all: array<u32, 8>;
    var lm_all: array<u32, 8>;
    var packed: array<u32, 12>;
    for (var j = 0u; j < 12u; j = j + 1u) {
        packed[j] = 0u;
    }
    for (var j = 0u; j < 8u; j = j + 1u) {
        // ggml stores nearest_int into a uint8_t (wrapping) before capping at 63.
        let ls = min(u32(nearest_int(fmul(inv_scale, scales[j]))) & 0xffu, 63u);
        let lm = min(u32(nearest_int(fmul(inv_min, mins[j]))) & 0xffu, 63u);
        ls_all[j] = ls;
        lm_all[j] = lm;
        if (j < 4u) {
            packed[j] = ls;
            packed[j + 4u] = lm;
        } else {
            packed[j + 4u] = (ls & 15u) | ((lm & 15u) << 4u);
            packed[j - 4u] = packed[j - 4u] | ((ls >> 4u) << 6u);
            packed[j] = packed[j] | ((lm >> 4u) << 6u);
        }
    }
    let dh = f32_to_f16(div_rn(max_scale, 63.0));
    let dminh = f32_to_f16(div_rn(max_min, 63.0));
    let df = f16_to_f32(dh);
    let dminf = f16_to_f32(dminh);
    for (var j = 0u; j < 8u; j = j + 1u) {
        let dj = fmul(df, f32(ls_all[j]));
        if (dj == 0.0) {
            continue;
        }
        let dm = fmul(dminf, f32(lm_all[j]));
        for (var i = 0u; i < 32u; i = i + 1u) {
            let v = qsrc[base + 32u * j + i];
            L[32u * j + i] = u32(clamp(nearest_int(div_rn(fadd(v, dm), dj)), 0, 15));
        }
    }
    put16(0u, dh);
    put16(2u, dminh);
    for (var j = 0u; j < 12u; j = j + 1u) {
        put(4u + j, packed[j]);
    }
    for (var gq = 0u; gq < 4u; gq = gq + 1u) {
        for (var i = 0u; i < 32u; i = i + 1u) {
            put(16u + 32u * gq + i, L[64u * gq + i] | (L[64u * gq + 32u + i] << 4u));
        }
    }
}

fn scale_min_k4(j: u32, o: u32) -> vec2<u32> {
    if (j < 4u) {
        return vec2<u32>(gb(o + j) & 63u, gb(o + j + 4u) & 63u);
    }
    let sc = (gb(o + j + 4u) & 15u) | ((gb(o + j - 4u) >> 6u) << 4u);
    let m = (gb(o + j + 4u) >> 4u) | ((gb(o + j) >> 6u) << 4u);
    return vec2<u32>(sc, m);
}

// Group g of the dequantize entry point (shaders/entry.wgsl).
fn dequantize_group(g: u32) {
    let o = g * 144u;
    let d = f16_to_f32(g16(o));
    let dmin = f16_to_f32(g16(o + 2u));
    for (var j = 0u; j < 8u; j = j + 1u) {
        let sm = scale_min_k4(j, o + 4u);
        let d1 = fmul(d, f32(sm.x));
        let m1 = fmul(dmin, f32(sm.y));
        let qo = o + 16u + 32u * (j / 2u);
        let shift = 4u * (j % 2u);
        for (var i = 0u; i < 32u; i = i + 1u) {
            ddst[g * 256u + 32u * j + i] = fsub(fmul(d1, f32((gb(qo + i) >> shift) & 15u)), m1);
        }
    }
}
