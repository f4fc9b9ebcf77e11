//! Block dequantization: GGML bytes → f32.
//! TODO(helper): implement.
