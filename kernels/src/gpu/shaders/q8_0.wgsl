// Q8_0 (34-byte blocks of 32), two blocks (68 bytes, 17 words) per invocation.
// ggml quantize_row_q8_0_ref / dequantize_row_q8_0; CPU spec kernels/src/quant/q8_0.rs.
const GROUP_BLOCKS: u32 = 2u;
const GROUP_WORDS: u32 = 17u;
var<private> ow: array<u32, 17>;

// Group g of the quantize entry point (shaders/entry.wgsl): ow is cleared, stored after.
fn quantize_group(g: u32) {
    for (var b = 0u; b < GROUP_BLOCKS; b = b + 1u) {
        let base = (g * GROUP_BLOCKS + b) * 32u;
        var amax = 0.0;
        for (var i = 0u; i < 32u; i = i + 1u) {
            amax = max(amax, abs(qsrc[base + i]));
        }
        let d = div_rn(amax, 127.0);
        let id = inverse(d);
        let o = b * 34u;
        put16(o, f32_to_f16(d));
        for (var i = 0u; i < 32u; i = i + 1u) {
            put(o + 2u + i, u32(i32(round_away(fmul(qsrc[base + i], id)))));
        }
    }
}

// Group g of the dequantize entry point (shaders/entry.wgsl).
fn dequantize_group(g: u32) {
    for (var b = 0u; b < GROUP_BLOCKS; b = b + 1u) {
        let blk = g * GROUP_BLOCKS + b;
        let o = blk * 34u;
        let d = f16_to_f32(g16(o));
        for (var i = 0u; i < 32u; i = i + 1u) {
            ddst[blk * 32u + i] = fmul(f32(sext8(gb(o + 2u + i))), d);
        }
    }
}
