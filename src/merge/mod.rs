//! Model merging, mergekit-compatible.
//!
//! - [`methods`]: the per-tensor math of every merge method (linear, slerp, nuslerp, task
//!   arithmetic and its TIES/DARE/breadcrumbs/DELLA variants, model stock, passthrough).

pub mod methods;
