//! Building blocks of the evolutionary merge search (`merge --evolve`): the search strategy
//! ([`cmaes`]: CMA-ES with ask/tell and exact checkpoints).

pub mod cmaes;

pub use cmaes::{Cmaes, CmaesError, CmaesOptions, StopReason};
