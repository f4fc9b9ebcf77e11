//! The `llmtool` binary: parses the command line and prints the whole error chain on failure.

use std::process::ExitCode;

fn main() -> ExitCode {
    llmtool::cli::install_interrupt_handler();
    match llmtool::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
