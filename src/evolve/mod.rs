//! The evolutionary merge search (`merge --evolve`): the search strategy ([`cmaes`]: CMA-ES
//! with ask/tell and exact checkpoints), the EVOLVE.yml schema ([`config`]), genome decoding
//! into mergekit configurations ([`genome`]), the search loop with in-memory merges and
//! checkpoints ([`search`]), the search state and its files ([`state`]), the driver ⇄ worker
//! JSON-lines protocol of distributed searches ([`protocol`]) and the fitness chart ([`plot`]).

pub mod cmaes;
pub mod config;
pub mod genome;
pub mod plot;
pub mod protocol;
pub mod search;
pub mod state;

pub use cmaes::{Cmaes, CmaesError, CmaesOptions, StopReason};
pub use config::EvolveConfig;
pub use plot::{fitness_svg, GenerationStat};
pub use search::{run_search, Evaluator, SearchOptions, SearchState};
