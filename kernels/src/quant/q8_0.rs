//! Q8_0 quantizer, ggml `quantize_row_q8_0_ref`: d = amax / 127, q = roundf(x / d)
//! (half away from zero, Rust's `f32::round`).

use super::{inverse, QuantizeBlock};
use crate::dequant::BlockQ8_0;
use half::f16;

impl QuantizeBlock for BlockQ8_0 {
    fn quantize(x: &[f32]) -> Self {
        let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = inverse(d);
        let mut qs = [0i8; 32];
        for (q, &v) in qs.iter_mut().zip(x) {
            // |v · id| ≤ 127 (up to rounding), so the saturating cast never saturates here.
            *q = (v * id).round() as i8;
        }
        BlockQ8_0 { d: f16::from_f32(d), qs }
    }
}
