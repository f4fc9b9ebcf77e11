//! Pre-deployment builds (`llmtool build RECIPE.yml`): a recipe of passes, each validated
//! on the built-in core, results cached by content hash, quality gates, and a report.
//! The recipe and its checks live in [`recipe`], content addressing in [`cache`], the
//! report in [`report`]; the CLI (`cli::build`) runs the steps.

pub mod cache;
pub mod recipe;
pub mod report;
