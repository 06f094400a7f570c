//! `berth exec`: a process in a running container, attached or detached; the command's exit
//! status is the process's.

use clap::Args;
use serde_json::{json, Value};

use crate::client::{exit, seg, Api};
use crate::stdio;

/// `berth exec`.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "LIST")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<String>,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// Override the key sequence for detaching a container (default ctrl-p,ctrl-q)
    #[arg(long, value_name = "STRING")]
    pub detach_keys: Option<String>,
    /// CONTAINER COMMAND [ARG...]
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, allow_hyphen_values = true, value_name = "CONTAINER COMMAND [ARG...]")]
    pub args: Vec<String>,
}

/// `berth exec`.
pub async fn exec(api: &Api, a: ExecArgs) -> anyhow::Result<()> {
    let (container, cmd) = a.args.split_first().expect("clap requires two arguments");
    if a.tty && a.interactive && !stdio::stdin_is_tty() {
        anyhow::bail!("the input device is not a TTY");
    }
    let env = crate::opts::ContainerOpts {
        env: a.env.clone(),
        env_file: a.env_file.clone(),
        ..Default::default()
    }
    .to_create("-", &[])?["Env"]
        .clone();
    let attach = !a.detach;
    let mut config = json!({
        "AttachStdin": attach && a.interactive,
        "AttachStdout": attach,
        "AttachStderr": attach,
        "Tty": a.tty,
        "Cmd": cmd,
        "Privileged": a.privileged,
    });
    if !env.is_null() {
        config["Env"] = env;
    }
    let keys = crate::run::detach_keys(a.detach_keys.as_deref())?;
    if let Some(k) = &a.detach_keys {
        config["DetachKeys"] = json!(k);
    }
    if let Some((h, w)) = stdio::terminal_size().filter(|_| a.tty) {
        config["ConsoleSize"] = json!([h, w]);
    }
    for (k, v) in [("User", &a.user), ("WorkingDir", &a.workdir)] {
        if let Some(v) = v {
            config[k] = json!(v);
        }
    }
    let created = api
        .post(
            &format!("/containers/{}/exec", seg(container)),
            "",
            Some(&config),
        )
        .await?;
    let id = created["Id"].as_str().unwrap_or_default().to_string();
    let start = json!({"Detach": a.detach, "Tty": a.tty});
    if a.detach {
        api.post(&format!("/exec/{id}/start"), "", Some(&start))
            .await?;
        return Ok(());
    }
    let conn = api
        .hijack(&format!("/exec/{id}/start"), "", Some(&start))
        .await?;
    let raw = (a.tty && a.interactive)
        .then(stdio::RawTerminal::enter)
        .flatten();
    if a.tty {
        stdio::follow_window_size(api, format!("/exec/{id}/resize"));
    }
    let streamed = stdio::session(conn, a.tty, a.interactive, Some(keys)).await;
    drop(raw);
    if streamed? == stdio::Ended::Detached {
        return Err(crate::run::escaped());
    }
    let info: Value = api.get(&format!("/exec/{id}/json"), "").await?;
    match info["ExitCode"].as_i64().unwrap_or(126) {
        0 => Ok(()),
        c => Err(exit(c as i32)),
    }
}
