//! `berth`: the Docker-compatible CLI. It becomes a client of berthd's Engine API with the
//! daemon issue; until then it only says so, so that nobody mistakes it for a working CLI.

use clap::Parser;

/// berth: Docker's commands, a faster engine.
///
/// The CLI is not implemented yet: it arrives with berthd, as a client of its Engine API.
/// Today, run containers from OCI bundles with `berth-runtime` (runc's command line).
#[derive(Parser, Debug)]
#[command(name = "berth", version)]
struct Opts {
    /// The Docker command to run (not implemented yet).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let opts = Opts::parse();
    let what = opts.command.first().map(String::as_str).unwrap_or("(none)");
    anyhow::bail!(
        "`berth {what}` is not implemented yet: the CLI comes with the berthd daemon. \
         Use `berth-runtime` to run OCI bundles today"
    )
}
