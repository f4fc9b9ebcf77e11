//! Q8_K quantizer, ggml `quantize_row_q8_K_ref`: d = max / −127 (max = the element of
//! largest magnitude, with its sign), q = min(127, nearest_int(x / d)), plus the sums of
//! each group of 16 quants.

use super::k_search::nearest_int;
use super::QuantizeBlock;
use crate::dequant::BlockQ8_K;

impl QuantizeBlock for BlockQ8_K {
    fn quantize(x: &[f32]) -> Self {
        let (mut max, mut amax) = (0.0f32, 0.0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        let mut qs = [0i8; 256];
        if amax == 0.0 {
            // ggml leaves `bsums` unwritten here; the quants are all zero, so are their sums.
            return BlockQ8_K { d: 0.0, qs, bsums: [0; 16] };
        }
        let iscale = -127.0f32 / max;
        for (q, &v) in qs.iter_mut().zip(x) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        let bsums = std::array::from_fn(|j| qs[16 * j..16 * j + 16].iter().map(|&q| q as i16).sum());
        BlockQ8_K { d: 1.0 / iscale, qs, bsums }
    }
}
