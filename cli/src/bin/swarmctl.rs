//! `swarmctl`: the client of a Shoal cluster. The commands live in `shoal_cli::ctl`.
#![forbid(unsafe_code)]

use clap::Parser;
use shoal_cli::ctl::{self, AlreadyReported, Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Usage errors exit 2 with clap's message and usage; everything else is `Error: …`, exit 1.
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(ctl::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `lab exec` / `lab shell`: the command's own exit code, no message of ours.
            if let Some(ctl::lab::ExitWith(code)) = e.downcast_ref() {
                return ExitCode::from(*code);
            }
            if e.downcast_ref::<AlreadyReported>().is_none() {
                eprintln!("Error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}
