//! f32 ⇄ f16 ⇄ bf16 element conversion (little-endian bytes ⇄ f32 values).
//! TODO(helper): implement.
