// Q5_1 (24-byte blocks of 32), one block (6 words) per invocation.
// ggml quantize_row_q5_1_ref / dequantize_row_q5_1; CPU spec kernels/src/quant/q5_1.rs.
const GROUP_BLOCKS: u32 = 1u;
const GROUP_WORDS: u32 = 6u;
var<private> ow: array<u32, 6>;

// Group g of the quantize entry point (shaders/entry.wgsl): ow is cleared, stored after.
fn quantize_group(g: u32) {
    let base = g * 32u;
    let mi = put_min_scale(base, 31.0);
    let mn = mi.x;
    let id = mi.y;
    var qh = 0u;
    for (var j = 0u; j < 16u; j = j + 1u) {
        let q0 = trunc_capped(fadd(fmul(fsub(qsrc[base + j], mn), id), 0.5), 31);
        let q1 = trunc_capped(fadd(fmul(fsub(qsrc[base + 16u + j], mn), id), 0.5), 31);
        put(8u + j, (q0 & 15u) | ((q1 & 15u) << 4u));
        qh = qh | ((q0 >> 4u) << j) | ((q1 >> 4u) << (j + 16u));
    }
    put16(4u, qh);
    put16(6u, qh >> 16u);
}

// Group g of the dequantize entry point (shaders/entry.wgsl).
fn dequantize_group(g: u32) {
    let o = g * 24u;
    let d = f16_to_f32(g16(o));
    let m = f16_to_f32(g16(o + 2u));
    let qh = g16(o + 4u) | (g16(o + 6u) << 16u);
    for (var j = 0u; j < 16u; j = j + 1u) {
        let q = gb(o + 8u + j);
        let x0 = (q & 15u) | (((qh >> j) & 1u) << 4u);
        let x1 = (q >> 4u) | (((qh >> (j + 16u)) & 1u) << 4u);
        ddst[g * 32u + j] = fadd(fmul(f32(x0), d), m);
        ddst[g * 32u + 16u + j] = fadd(fmul(f32(x1), d), m);
    }
}
