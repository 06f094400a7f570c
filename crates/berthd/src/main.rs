//! `berthd`: the daemon that will serve the Docker Engine API. Its work is its own issue; this
//! binary exists so that the workspace has its final shape and refuses clearly until then.

use clap::Parser;

/// berthd: berth's daemon (Docker Engine API on /run/berth/berth.sock).
///
/// Not implemented yet: it comes with the daemon issue.
#[derive(Parser, Debug)]
#[command(name = "berthd", version)]
struct Opts {}

fn main() -> anyhow::Result<()> {
    let _ = Opts::parse();
    anyhow::bail!("berthd is not implemented yet: it comes with the daemon issue")
}
