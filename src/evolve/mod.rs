//! Building blocks of the evolutionary merge search (`merge --evolve`): the search strategy
//! ([`cmaes`]: CMA-ES with ask/tell and exact checkpoints) and the fitness chart ([`plot`]).

pub mod cmaes;

pub use cmaes::{Cmaes, CmaesError, CmaesOptions, StopReason};
pub mod plot;

pub use plot::{fitness_svg, GenerationStat};
