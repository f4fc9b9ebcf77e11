// Q4_1 (20-byte blocks of 32), one block (5 words) per invocation.
// ggml quantize_row_q4_1_ref / dequantize_row_q4_1; CPU spec kernels/src/quant/q4_1.rs.
const GROUP_BLOCKS: u32 = 1u;
const GROUP_WORDS: u32 = 5u;
var<private> ow: array<u32, 5>;

@compute @workgroup_size(64)
fn quantize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = group_index(gid, nwg);
    if (g >= P.n_groups) {
        return;
    }
    clear_out();
    let base = g * 32u;
    // Integer searches: `m` stores mn's bits, signed zero included.
    let mn = first_min(base, 32u);
    let mx = first_max(base, 32u);
    let d = div_rn(fsub(mx, mn), 15.0);
    let id = inverse(d);
    put16(0u, f32_to_f16(d));
    put16(2u, f32_to_f16(mn));
    for (var j = 0u; j < 16u; j = j + 1u) {
        let q0 = trunc_capped(fadd(fmul(fsub(qsrc[base + j], mn), id), 0.5), 15);
        let q1 = trunc_capped(fadd(fmul(fsub(qsrc[base + 16u + j], mn), id), 0.5), 15);
        put(4u + j, q0 | (q1 << 4u));
    }
    store_out(g);
}

@compute @workgroup_size(64)
fn dequantize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = group_index(gid, nwg);
    if (g >= P.n_groups) {
        return;
    }
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
