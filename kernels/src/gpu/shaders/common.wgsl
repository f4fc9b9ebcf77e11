// Shared by every block-codec shader (prepended to each one by src/gpu/codec.rs).
//
// Bit-exactness with the CPU reference (kernels/src/quant), whatever the Vulkan driver.
// Vulkan (SPIR-V without `NoContraction`, which WGSL cannot express) rounds a single f32
// add, sub and mul correctly, but lets the compiler *combine* operations: contract
// `a * b + c` into a fused multiply-add and reassociate (`(w * l) * l` -> `w * (l * l)`,
// `(a + c1) + c2` -> `a + (c1 + c2)`); division and sqrt are only accurate to a few ULP; and
// it may flush denormals and assume no NaN, no infinity and no signed zero. So:
// - every float add, sub and mul is written `fadd`/`fsub`/`fmul`: its correctly rounded
//   result goes through `ox`, which ORs its bits with `P.zero` (a uniform that is 0 at run
//   time, unknown to the compiler). An OR of integers is opaque to float rewriting, so no
//   two float operations can be fused or reassociated: each one is the single correctly
//   rounded IEEE operation the CPU performs, in the CPU's order;
// - divisions and square roots are done in integer arithmetic, correctly rounded to nearest
//   even (`div_rn`, `sqrt_rn`), like the CPU's IEEE `/` and `sqrt` (integer operations are
//   exact on every driver; no `fma` is needed, and Vulkan does not even promise that
//   `fma` is fused);
// - f32 <-> f16 conversions are done in integer arithmetic (round to nearest even, like
//   `half::f16::from_f32` and ggml's GGML_FP32_TO_FP16), never `pack2x16float`;
// - the min/max searches whose *bits* are stored (Q4_1/Q5_1 `m`) are integer searches
//   (`first_min`/`first_max`), so a driver's fmin/fmax cannot pick the other signed zero;
// - rounding helpers use only exact operations (trunc, exact differences, comparisons).
// What the GPU is never given (the host computes those blocks with the CPU reference and
// patches them in, kernels/src/gpu/special.rs): quantize blocks with a non-finite input or
// magnitudes outside the range in which no intermediate can overflow or be subnormal, and
// dequantize blocks whose f16 scales are infinite or NaN.

struct Params {
    // Block groups in this dispatch (one invocation each).
    n_groups: u32,
    // Always 0; see `ox`.
    zero: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;

// The rounded value of `x`, opaque to the compiler (no contraction or reassociation across it).
fn ox(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) | P.zero);
}

// One correctly rounded IEEE operation each, never combined with a neighbour (see above).
fn fadd(a: f32, b: f32) -> f32 {
    return ox(a + b);
}

fn fsub(a: f32, b: f32) -> f32 {
    return ox(a - b);
}

fn fmul(a: f32, b: f32) -> f32 {
    return ox(a * b);
}

// Order key of the bits of a finite f32 for IEEE `<`: monotone, with -0 and +0 equal.
fn fkey(u_in: u32) -> u32 {
    var u = u_in;
    if ((u & 0x7fffffffu) == 0u) {
        u = 0u;
    }
    if ((u & 0x80000000u) != 0u) {
        return ~u;
    }
    return u | 0x80000000u;
}

// Flat group index of a 2-D dispatch of 64-wide workgroups.
fn group_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// IEEE f32 division a / b rounded to nearest even (finite nonzero b; other cases fall back to
// the hardware, which the callers never hit).
fn div_rn(a: f32, b: f32) -> f32 {
    let ua = bitcast<u32>(a);
    let ub = bitcast<u32>(b);
    let sign = (ua ^ ub) & 0x80000000u;
    var ea = i32((ua >> 23u) & 0xffu);
    var eb = i32((ub >> 23u) & 0xffu);
    var ma = ua & 0x7fffffu;
    var mb = ub & 0x7fffffu;
    if (ea == 255 || eb == 255 || (ub & 0x7fffffffu) == 0u) {
        return a / b;
    }
    if ((ua & 0x7fffffffu) == 0u) {
        return bitcast<f32>(sign);
    }
    if (ea == 0) {
        let s = countLeadingZeros(ma) - 8u;
        ma = ma << s;
        ea = 1 - i32(s);
    } else {
        ma = ma | 0x800000u;
    }
    if (eb == 0) {
        let s = countLeadingZeros(mb) - 8u;
        mb = mb << s;
        eb = 1 - i32(s);
    } else {
        mb = mb | 0x800000u;
    }
    var e = ea - eb + 127;
    if (ma < mb) {
        ma = ma << 1u;
        e = e - 1;
    }
    // ma / mb in [1, 2): 25 quotient bits (24 significant + 1 guard), remainder -> sticky.
    var r = ma;
    var q = 0u;
    for (var i = 0u; i < 25u; i = i + 1u) {
        q = q << 1u;
        if (r >= mb) {
            r = r - mb;
            q = q | 1u;
        }
        r = r << 1u;
    }
    return pack_rn(sign, e, q, r != 0u);
}

// Rounds the 25-bit value `q` (24 significant bits + guard, leading bit at 2^24 meaning
// 1.0 · 2^(e - 127)) with `sticky` to an f32 with sign bit `sign`.
fn pack_rn(sign: u32, e_in: i32, q_in: u32, sticky_in: bool) -> f32 {
    var e = e_in;
    var q = q_in;
    var sticky = sticky_in;
    if (e <= 0) {
        // Subnormal result: shift right, keeping the lost bits in sticky.
        let sh = u32(1 - e);
        if (sh >= 26u) {
            sticky = sticky || q != 0u;
            q = 0u;
        } else {
            sticky = sticky || (q & ((1u << sh) - 1u)) != 0u;
            q = q >> sh;
        }
        e = 0;
    }
    var m = q >> 1u;
    if ((q & 1u) == 1u && (sticky || (m & 1u) == 1u)) {
        m = m + 1u;
    }
    var bits = m;
    if (e > 0) {
        bits = (u32(e - 1) << 23u) + m;
    }
    if (e >= 255 || bits >= 0x7f800000u) {
        bits = 0x7f800000u;
    }
    return bitcast<f32>(sign | bits);
}

// IEEE sqrt(x) rounded to nearest even, for x >= 0 finite (digit-by-digit integer root).
fn sqrt_rn(x: f32) -> f32 {
    let u = bitcast<u32>(x);
    if ((u & 0x7fffffffu) == 0u || u >= 0x7f800000u) {
        return sqrt(x);
    }
    var ex = i32(u >> 23u);
    var m = u & 0x7fffffu;
    if (ex == 0) {
        let s = countLeadingZeros(m) - 8u;
        m = m << s;
        ex = 1 - i32(s);
    } else {
        m = m | 0x800000u;
    }
    // x = m · 2^p with m in [2^23, 2^24); make p even.
    var p = ex - 150;
    if ((p & 1) != 0) {
        m = m << 1u;
        p = p - 1;
    }
    // floor(sqrt(m · 2^26)), 26 bit pairs of the radicand from the top.
    var r = 0u;
    var q = 0u;
    for (var i = 25i; i >= 0; i = i - 1) {
        var pair = 0u;
        let at = 2 * i - 26;
        if (at >= 0) {
            pair = (m >> u32(at)) & 3u;
        }
        r = (r << 2u) | pair;
        let t = (q << 2u) | 1u;
        if (r >= t) {
            r = r - t;
            q = (q << 1u) | 1u;
        } else {
            q = q << 1u;
        }
    }
    // sqrt(x) = q · 2^((p - 26) / 2), q in [2^24, 2^26).
    var sticky = r != 0u;
    var s = (p - 26) / 2;
    if (q >= 0x2000000u) {
        sticky = sticky || (q & 1u) != 0u;
        q = q >> 1u;
        s = s + 1;
    }
    // q has 25 bits: value = (q / 2^24) · 2^(s + 24).
    return pack_rn(0u, s + 24 + 127, q, sticky);
}

// f32 -> f16 bits, round to nearest even (overflow to inf, NaN to a quiet NaN).
fn f32_to_f16(x: f32) -> u32 {
    let u = bitcast<u32>(x);
    let sign = (u >> 16u) & 0x8000u;
    let a = u & 0x7fffffffu;
    if (a > 0x7f800000u) {
        return sign | 0x7e00u;
    }
    if (a >= 0x477ff000u) {
        return sign | 0x7c00u;
    }
    if (a >= 0x38800000u) {
        let m = a - 0x38000000u;
        return sign | ((m + 0xfffu + ((m >> 13u) & 1u)) >> 13u);
    }
    if (a <= 0x33000000u) {
        return sign;
    }
    let e = a >> 23u;
    let mant = (a & 0x7fffffu) | 0x800000u;
    let shift = 126u - e;
    let q = mant >> shift;
    let rem = mant & ((1u << shift) - 1u);
    let half = 1u << (shift - 1u);
    var r = q;
    if (rem > half || (rem == half && (q & 1u) == 1u)) {
        r = r + 1u;
    }
    return sign | r;
}

// f16 bits -> f32 (exact).
fn f16_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0u) {
        // m · 2^-24: both factors exact, the product a normal f32.
        return bitcast<f32>(sign | bitcast<u32>(fmul(f32(m), bitcast<f32>(0x33800000u))));
    }
    if (e == 31u) {
        return bitcast<f32>(sign | 0x7f800000u | (m << 13u));
    }
    return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}

// C's roundf (half away from zero), like Rust's f32::round: t = trunc(v), v - t is exact.
fn round_away(v_in: f32) -> f32 {
    let v = ox(v_in);
    let t = ox(trunc(v));
    if (abs(fsub(v, t)) >= 0.5) {
        return fadd(t, sign(v));
    }
    return t;
}

// ggml nearest_int: v + 1.5 · 2^23 rounds to nearest even in the low mantissa bits.
fn nearest_int(v: f32) -> i32 {
    let b = bitcast<u32>(fadd(ox(v), 12582912.0));
    return i32(b & 0x7fffffu) - 0x400000;
}

// ggml's `d ? 1.0f/d : 0.0f`.
fn inverse(d: f32) -> f32 {
    if (d != 0.0) {
        return div_rn(1.0, d);
    }
    return 0.0;
}

// Rust `(v as i32).clamp(0, top)`: truncation toward zero, saturating.
fn trunc_capped(v: f32, top: i32) -> u32 {
    return u32(clamp(i32(v), 0, top));
}

// Sign-extends the low byte of b.
fn sext8(b: u32) -> i32 {
    return bitcast<i32>(b << 24u) >> 24u;
}
