// Probes of the exact-arithmetic helpers of common.wgsl, for the tests (kernels/tests/gpu.rs
// compares them with the CPU's IEEE results). One item per invocation; P.n_groups items.
// Inputs in qsrc, result bits in qdst.
const GROUP_WORDS: u32 = 1u;
var<private> ow: array<u32, 1>;

// qsrc = (a0, b0, a1, b1, ...): div_rn(a, b).
@compute @workgroup_size(64)
fn probe_div(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = group_index(gid, nwg);
    if (i >= P.n_groups) {
        return;
    }
    qdst[i] = bitcast<u32>(div_rn(qsrc[2u * i], qsrc[2u * i + 1u]));
}

@compute @workgroup_size(64)
fn probe_sqrt(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = group_index(gid, nwg);
    if (i >= P.n_groups) {
        return;
    }
    qdst[i] = bitcast<u32>(sqrt_rn(qsrc[i]));
}

// f32 -> f16 bits.
@compute @workgroup_size(64)
fn probe_to_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = group_index(gid, nwg);
    if (i >= P.n_groups) {
        return;
    }
    qdst[i] = f32_to_f16(qsrc[i]);
}

// f16 bits (given as the f32 value of the integer) -> f32 bits.
@compute @workgroup_size(64)
fn probe_from_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = group_index(gid, nwg);
    if (i >= P.n_groups) {
        return;
    }
    qdst[i] = bitcast<u32>(f16_to_f32(u32(qsrc[i])));
}

// (nearest_int(x), round_away(x) as i32) packed as two i16 halves would lose range: two words.
@compute @workgroup_size(64)
fn probe_round(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = group_index(gid, nwg);
    if (i >= P.n_groups / 2u) {
        return;
    }
    qdst[2u * i] = bitcast<u32>(nearest_int(qsrc[i]));
    qdst[2u * i + 1u] = bitcast<u32>(i32(round_away(qsrc[i])));
}
