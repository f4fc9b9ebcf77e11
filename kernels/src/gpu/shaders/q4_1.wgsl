// Q4_1 (20-byte blocks of 32), one block (5 words) per invocation.
// ggml quantize_row_q4_1_ref / dequantize_row_q4_1; CPU spec kernels/src/quant/q4_1.rs.
const GROUP_BLOCKS: u32 = 1u;
const GROUP_WORDS: u32 = 5u;
var<private> ow: array<u32, 5>;

// Group g of the quantize entry point (shaders/entry.wgsl): ow is cleared, stored after.
fn quantize_group(g: u32) {
    let base = g * 32u;
    let mi = put_min_scale(base, 15.0);
    let mn = mi.x;
    let id = mi.y;
    for (var j = 0u; j < 16u; j = j + 1u) {
        let q0 = trunc_capped(fadd(fmul(fsub(qsrc[base + j], mn), id), 0.5), 15);
        let q1 = trunc_capped(fadd(fmul(fsub(qsrc[base + 16u + j], mn), id), 0.5), 15);
        put(4u + j, q0 | (q1 << 4u));
    }
}

// Group g of the dequantize entry point (shaders/entry.wgsl).
fn dequantize_group(g: u32) {
    let o = g * 20u;
    let d = f16_to_f32(g16(o));
    let m = f16_to_f32(g16(o + 2u));
    for (var j = 0u; j < 16u; j = j + 1u) {
        let q = gb(o + 4u + j);
        // q · d + m: two roundings, like the CPU (fmul/fadd are never fused).
        ddst[g * 32u + j] = fadd(fmul(f32(q & 15u), d), m);
        ddst[g * 32u + 16u + j] = fadd(fmul(f32(q >> 4u), d), m);
    }
}
