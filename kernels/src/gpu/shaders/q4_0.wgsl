// Q4_0 (18-byte blocks of 32), two blocks (36 bytes, 9 words) per invocation.
// ggml quantize_row_q4_0_ref / dequantize_row_q4_0; CPU spec kernels/src/quant/q4_0.rs.
const GROUP_BLOCKS: u32 = 2u;
const GROUP_WORDS: u32 = 9u;
var<private> ow: array<u32, 9>;

// Group g of the quantize entry point (shaders/entry.wgsl): ow is cleared, stored after.
fn quantize_group(g: u32) {
    for (var b = 0u; b < GROUP_BLOCKS; b = b + 1u) {
        let base = (g * GROUP_BLOCKS + b) * 32u;
        let mx = signed_absmax(base, 32u).y;
        let d = div_rn(mx, -8.0);
        let id = inverse(d);
        let o = b * 18u;
        put16(o, f32_to_f16(d));
        for (var j = 0u; j < 16u; j = j + 1u) {
            let q0 = trunc_capped(fadd(fmul(qsrc[base + j], id), 8.5), 15);
            let q1 = trunc_capped(fadd(fmul(qsrc[base + 16u + j], id), 8.5), 15);
            put(o + 2u + j, q0 | (q1 << 4u));
        }
    }
}

// Group g of the dequantize entry point (shaders/entry.wgsl).
fn dequantize_group(g: u32) {
    for (var b = 0u; b < GROUP_BLOCKS; b = b + 1u) {
        let blk = g * GROUP_BLOCKS + b;
        let o = blk * 18u;
        let d = f16_to_f32(g16(o));
        for (var j = 0u; j < 16u; j = j + 1u) {
            let q = gb(o + 2u + j);
            ddst[blk * 32u + j] = fmul(f32(i32(q & 15u) - 8), d);
            ddst[blk * 32u + 16u + j] = fmul(f32(i32(q >> 4u) - 8), d);
        }
    }
}
