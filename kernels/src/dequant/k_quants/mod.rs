//! K-quants: 256-element super-blocks split into 16- or 32-element sub-blocks, each with its
//! own quantized scale (and minimum). Layouts from ggml `ggml-common.h` (`block_q*_K`),
//! formulas from `ggml-quants.c` (`dequantize_row_q*_K`).

mod q2_k;
mod q3_k;
mod q4_k;
mod q5_k;
mod q6_k;
mod q8_k;

pub use q2_k::BlockQ2_K;
pub use q3_k::BlockQ3_K;
pub use q4_k::BlockQ4_K;
pub use q5_k::BlockQ5_K;
pub use q6_k::BlockQ6_K;
pub use q8_k::BlockQ8_K;

/// Elements per super-block (`QK_K` in ggml).
pub(crate) const QK_K: usize = 256;
/// Bytes of packed 6-bit scales and minimums in Q4_K / Q5_K (`K_SCALE_SIZE`).
pub(crate) const K_SCALE_SIZE: usize = 12;

/// ggml `get_scale_min_k4`: the 6-bit scale and minimum of sub-block `j` (0..8) of Q4_K /
/// Q5_K. Bytes 0..4 hold scales 0..4 in their low 6 bits, bytes 4..8 the minimums 0..4;
/// for j ≥ 4 the low 4 bits come from the nibbles of bytes 8..12 (scale low, minimum
/// high) and the top 2 bits from the spare top bits of bytes j − 4 (scale) and j (minimum).
pub(crate) fn scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        let sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        let m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        (sc, m)
    }
}
