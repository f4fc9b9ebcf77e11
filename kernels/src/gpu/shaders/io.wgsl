// Bindings and byte helpers shared by the block-codec shaders (after common.wgsl).
// quantize: f32 in, whole u32 words of GGUF block bytes out; dequantize: the reverse.
// One invocation owns one group of blocks whose byte size is a multiple of 4, assembles it
// in `ow` and stores whole words: no two invocations share a word, no atomics needed.

@group(0) @binding(1) var<storage, read> qsrc: array<f32>;
@group(0) @binding(2) var<storage, read_write> qdst: array<u32>;
@group(0) @binding(3) var<storage, read> dsrc: array<u32>;
@group(0) @binding(4) var<storage, read_write> ddst: array<f32>;

// Byte i of the group being written (zeroed by `clear_out`).
fn put(i: u32, b: u32) {
    ow[i >> 2u] = ow[i >> 2u] | ((b & 0xffu) << ((i & 3u) * 8u));
}

fn put16(i: u32, h: u32) {
    put(i, h);
    put(i + 1u, h >> 8u);
}

fn clear_out() {
    for (var i = 0u; i < GROUP_WORDS; i = i + 1u) {
        ow[i] = 0u;
    }
}

fn store_out(g: u32) {
    for (var i = 0u; i < GROUP_WORDS; i = i + 1u) {
        qdst[g * GROUP_WORDS + i] = ow[i];
    }
}

// Byte i of the input bytes (dequantize).
fn gb(i: u32) -> u32 {
    return (dsrc[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

fn g16(i: u32) -> u32 {
    return gb(i) | (gb(i + 1u) << 8u);
}

// The bits of the first of qsrc[base..base+n] that is IEEE-smaller than every earlier one
// and than f32::MAX (kernels/src/quant min_max: `if v < min { min = v }` from f32::MAX),
// found by integer comparisons of order keys, so the stored bits (signed zero included)
// are the CPU's whatever fmin the driver has. Inputs are finite (special.rs).
fn first_min(base: u32, n: u32) -> f32 {
    var best = 0x7f7fffffu;
    for (var i = 0u; i < n; i = i + 1u) {
        let u = bitcast<u32>(qsrc[base + i]);
        if (fkey(u) < fkey(best)) {
            best = u;
        }
    }
    return bitcast<f32>(best);
}

// Like `first_min` for `if v > max { max = v }` from -f32::MAX.
fn first_max(base: u32, n: u32) -> f32 {
    var best = 0xff7fffffu;
    for (var i = 0u; i < n; i = i + 1u) {
        let u = bitcast<u32>(qsrc[base + i]);
        if (fkey(u) > fkey(best)) {
            best = u;
        }
    }
    return bitcast<f32>(best);
}

// (amax, mx) of qsrc[base..base+n]: the largest |v| and the first v that reaches it (signed
// absmax, first on ties: ggml's `if (amax < fabsf(v)) { amax = fabsf(v); max = v; }`).
fn signed_absmax(base: u32, n: u32) -> vec2<f32> {
    var amax = 0.0;
    var mx = 0.0;
    for (var i = 0u; i < n; i = i + 1u) {
        let v = qsrc[base + i];
        if (amax < abs(v)) {
            amax = abs(v);
            mx = v;
        }
    }
    return vec2<f32>(amax, mx);
}

// Head of a Q4_1/Q5_1 block of 32 at qsrc[base..]: d = (max - min) / nmax as f16 at byte 0,
// m = min as f16 at byte 2. Integer searches: `m` stores mn's bits, signed zero included.
// Returns (mn, 1/d).
fn put_min_scale(base: u32, nmax: f32) -> vec2<f32> {
    let mn = first_min(base, 32u);
    let mx = first_max(base, 32u);
    let d = div_rn(fsub(mx, mn), nmax);
    let id = inverse(d);
    put16(0u, f32_to_f16(d));
    put16(2u, f32_to_f16(mn));
    return vec2<f32>(mn, id);
}
