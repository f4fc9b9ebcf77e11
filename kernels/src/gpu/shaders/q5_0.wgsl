// Q5_0 (22-byte blocks of 32), two blocks (44 bytes, 11 words) per invocation.
// ggml quantize_row_q5_0_ref / dequantize_row_q5_0; CPU spec kernels/src/quant/q5_0.rs.
const GROUP_BLOCKS: u32 = 2u;
const GROUP_WORDS: u32 = 11u;
var<private> ow: array<u32, 11>;

// Group g of the quantize entry point (shaders/entry.wgsl): ow is cleared, stored after.
fn quantize_group(g: u32) {
    for (var b = 0u; b < GROUP_BLOCKS; b = b + 1u) {
        let base = (g * GROUP_BLOCKS + b) * 32u;
        let mx = signed_absmax(base, 32u).y;
        let d = div_rn(mx, -16.0);
        let id = inverse(d);
        let o = b * 22u;
        put16(o, f32_to_f16(d));
        var qh = 0u;
        for (var j = 0u; j < 16u; j = j + 1u) {
            let q0 = trunc_capped(fadd(fmul(qsrc[base + j], id), 16.5), 31);
            let q1 = trunc_capped(fadd(fmul(qsrc[base + 16u + j], id), 16.5), 31);
            put(o + 6u + j, (q0 & 15u) | ((q1 & 15u) << 4u));
            qh = qh | ((q0 >> 4u) << j) | ((q1 >> 4u) << (j + 16u));
        }
        put16(o + 2u, qh);
        put16(o + 4u, qh >> 16u);
    }
}

// Group g of the dequantize entry point (shaders/entry.wgsl).
fn dequantize_group(g: u32) {
    for (var b = 0u; b < GROUP_BLOCKS; b = b + 1u) {
        let blk = g * GROUP_BLOCKS + b;
        let o = blk * 22u;
        let d = f16_to_f32(g16(o));
        let qh = g16(o + 2u) | (g16(o + 4u) << 16u);
        for (var j = 0u; j < 16u; j = j + 1u) {
            let q = gb(o + 6u + j);
            let x0 = i32((q & 15u) | (((qh >> j) & 1u) << 4u)) - 16;
            let x1 = i32((q >> 4u) | (((qh >> (j + 16u)) & 1u) << 4u)) - 16;
            ddst[blk * 32u + j] = fmul(f32(x0), d);
            ddst[blk * 32u + 16u + j] = fmul(f32(x1), d);
        }
    }
}
