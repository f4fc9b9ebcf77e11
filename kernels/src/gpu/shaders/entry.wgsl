// Entry points of every block codec (appended to its shader by src/gpu/codec.rs): one
// invocation per group of blocks; the codec defines `quantize_group` (which assembles the
// group's bytes in `ow`) and `dequantize_group`.

@compute @workgroup_size(64)
fn quantize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = group_index(gid, nwg);
    if (g >= P.n_groups) {
        return;
    }
    clear_out();
    quantize_group(g);
    store_out(g);
}

@compute @workgroup_size(64)
fn dequantize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = group_index(gid, nwg);
    if (g >= P.n_groups) {
        return;
    }
    dequantize_group(g);
}
