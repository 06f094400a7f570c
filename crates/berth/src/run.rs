//! `run`, `create`, `start` and `attach`: the docker CLI's sequence (create, attach before
//! start, wait registered before start, start, stream, exit with the container's status).

use anyhow::Context;
use clap::{ArgAction, Args};
use serde_json::Value;

use crate::client::{exit, query, seg, status_of, Api, Exit};
use crate::opts::ContainerOpts;
use crate::stdio;

/// `berth create`.
#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    #[command(flatten)]
    pub opts: ContainerOpts,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub args: Vec<String>,
}

/// `berth run`.
#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    #[command(flatten)]
    pub opts: ContainerOpts,
    /// Run container in background and print container ID
    #[arg(short, long)]
    pub detach: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Proxy received signals to the process
    #[arg(long, default_value_t = true, action = ArgAction::Set, value_name = "BOOL")]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container (default ctrl-p,ctrl-q)
    #[arg(long, value_name = "STRING")]
    pub detach_keys: Option<String>,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub args: Vec<String>,
}

/// `berth start`.
#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container (default ctrl-p,ctrl-q)
    #[arg(long, value_name = "STRING")]
    pub detach_keys: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `berth attach`.
#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long)]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long, default_value_t = true, action = ArgAction::Set, value_name = "BOOL")]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container (default ctrl-p,ctrl-q)
    #[arg(long, value_name = "STRING")]
    pub detach_keys: Option<String>,
    pub container: String,
}

/// `busybox` -> `busybox:latest`, as Docker names an image it could not find.
fn tagged(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || image.contains('@') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// Creates the container, pulling the image first when it is missing and `--pull` allows
/// (berthd has no registry client yet, so it says why it cannot pull); returns its ID.
async fn create(api: &Api, o: &ContainerOpts, args: &[String], rm: bool) -> anyhow::Result<String> {
    let (image, cmd) = args
        .split_first()
        .context("\"create\" requires at least 1 argument")?;
    let mut body = o.to_create(image, cmd)?;
    if rm {
        body["HostConfig"]["AutoRemove"] = Value::Bool(true);
    }
    let mut params = Vec::new();
    if let Some(n) = &o.name {
        params.push(("name", n.clone()));
    }
    if let Some(p) = &o.platform {
        params.push(("platform", p.clone()));
    }
    let q = query(&params);
    if o.pull == "always" {
        pull(api, image, o.quiet).await?;
    }
    let created = match api.post("/containers/create", &q, Some(&body)).await {
        // Only a missing image is pulled (dockerd also answers 404 for a missing network
        // or container named in the request, which a pull cannot fix).
        Err(e)
            if status_of(&e) == Some(404)
                && o.pull == "missing"
                && e.to_string().contains("No such image") =>
        {
            eprintln!("Unable to find image '{}' locally", tagged(image));
            pull(api, image, o.quiet).await?;
            api.post("/containers/create", &q, Some(&body)).await?
        }
        other => other?,
    };
    for w in created["Warnings"].as_array().into_iter().flatten() {
        if let Some(w) = w.as_str().filter(|w| !w.is_empty()) {
            eprintln!("WARNING: {w}");
        }
    }
    let id = created["Id"].as_str().unwrap_or_default().to_string();
    if let Some(f) = &o.cidfile {
        std::fs::write(f, &id).with_context(|| format!("write the container ID file {f}"))?;
    }
    Ok(id)
}

/// `POST /images/create?fromImage=`: the daemon's answer is a stream of progress lines.
async fn pull(api: &Api, image: &str, quiet: bool) -> anyhow::Result<()> {
    // As the docker CLI: `tag` carries a tag or, for `name@sha256:...`, the digest.
    let (name, tag) = match image.split_once('@') {
        Some((n, digest)) => (n, digest),
        None => match image.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            Some((n, t)) => (n, t),
            None => (image, "latest"),
        },
    };
    let resp = api
        .stream(
            hyper::Method::POST,
            "/images/create",
            &query(&[("fromImage", name.to_string()), ("tag", tag.to_string())]),
            None,
        )
        .await?;
    crate::images::show_progress(resp, quiet).await
}

/// The docker CLI's exit status for a start that failed: 127 when the command is not there,
/// 126 when it cannot be run, 125 otherwise.
fn start_failure(e: anyhow::Error) -> anyhow::Error {
    let msg = format!("{e:#}");
    let code =
        if msg.contains("executable file not found") || msg.contains("no such file or directory") {
            127
        } else if msg.contains("permission denied")
            || msg.contains("is a directory")
            || msg.contains("does not have correct permissions")
        {
            126
        } else {
            125
        };
    Exit {
        code,
        message: format!("berth: {msg}\n\nRun 'berth run --help' for more information"),
    }
    .into()
}

/// `berth create`: prints the new container's ID.
pub async fn create_cmd(api: &Api, a: CreateArgs) -> anyhow::Result<()> {
    let id = create(api, &a.opts, &a.args, a.rm)
        .await
        .map_err(|e| Exit {
            code: 125,
            message: format!("berth: {e:#}\n\nRun 'berth create --help' for more information"),
        })?;
    println!("{id}");
    Ok(())
}

/// `berth run`.
pub async fn run(api: &Api, a: RunArgs) -> anyhow::Result<()> {
    let o = &a.opts;
    if a.detach && !o.attach.is_empty() {
        return Err(Exit {
            code: 125,
            message: "berth: conflicting options: cannot specify both --attach and --detach".into(),
        }
        .into());
    }
    let stdin = o.interactive
        && (o.attach.is_empty() || o.attach.iter().any(|s| s.eq_ignore_ascii_case("stdin")));
    if o.tty && stdin && !stdio::stdin_is_tty() {
        return Err(Exit {
            code: 1,
            message: "the input device is not a TTY".into(),
        }
        .into());
    }
    let keys = detach_keys(a.detach_keys.as_deref())?;
    let id = create(api, o, &a.args, a.rm).await.map_err(|e| Exit {
        code: 125,
        message: format!("berth: {e:#}\n\nRun 'berth run --help' for more information"),
    })?;
    if a.detach {
        api.post(&format!("/containers/{id}/start"), "", None)
            .await
            .map_err(start_failure)?;
        println!("{id}");
        return Ok(());
    }
    let stdout = o.attach.is_empty() || o.attach.iter().any(|s| s.eq_ignore_ascii_case("stdout"));
    let stderr = o.attach.is_empty() || o.attach.iter().any(|s| s.eq_ignore_ascii_case("stderr"));
    // Attached and waiting before the start, so no output and no exit is missed.
    let conn = api
        .hijack(
            &format!("/containers/{id}/attach"),
            &query(&[
                ("stream", "1".into()),
                ("stdin", (stdin as u8).to_string()),
                ("stdout", (stdout as u8).to_string()),
                ("stderr", (stderr as u8).to_string()),
                ("detachKeys", a.detach_keys.clone().unwrap_or_default()),
            ]),
            None,
        )
        .await
        .map_err(|e| Exit {
            code: 125,
            message: format!("berth: {e:#}"),
        })?;
    let status = api
        .wait(&id, if a.rm { "removed" } else { "next-exit" })
        .await
        .map_err(|e| Exit {
            code: 125,
            message: format!("berth: {e:#}"),
        })?;
    let raw = (o.tty && stdin).then(stdio::RawTerminal::enter).flatten();
    if let Err(e) = api.post(&format!("/containers/{id}/start"), "", None).await {
        drop(raw);
        return Err(start_failure(e));
    }
    if o.tty {
        stdio::follow_window_size(api, format!("/containers/{id}/resize"));
    } else if a.sig_proxy {
        stdio::proxy_signals(api, &id);
    }
    let streamed = stdio::session(conn, o.tty, stdin, Some(keys)).await;
    if matches!(streamed, Ok(stdio::Ended::Detached)) {
        // As the docker CLI: detached, the container runs on, and run exits 0.
        drop(raw);
        return Ok(());
    }
    let code = status.await;
    drop(raw);
    streamed.context("stream the container's output")?;
    match code? {
        0 => Ok(()),
        c => Err(exit(c as i32)),
    }
}

/// A container's inspect JSON (its tty says how its streams are framed).
async fn inspect(api: &Api, id: &str) -> anyhow::Result<Value> {
    api.get(&format!("/containers/{}/json", seg(id)), "").await
}

/// The detach keys given (or Docker's default), as bytes; a bad one is Docker's error.
pub fn detach_keys(keys: Option<&str>) -> anyhow::Result<Vec<u8>> {
    berth_detach::parse(keys.unwrap_or("")).map_err(|e| {
        Exit {
            code: 125,
            message: format!("berth: {e}"),
        }
        .into()
    })
}

/// The exit status of an attached session: `None` when the user detached.
type Attached = Option<i64>;

/// Attaches to a running (or about to start) container until its output ends; returns its
/// exit status, or `None` if the user detached.
async fn attach_until_exit(
    api: &Api,
    id: &str,
    stdin: bool,
    sig_proxy: bool,
    start: bool,
    keys: Option<&str>,
) -> anyhow::Result<Attached> {
    let detach = detach_keys(keys)?;
    let info = inspect(api, id).await?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let id = info["Id"].as_str().unwrap_or(id).to_string();
    let stdin = stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    let conn = api
        .hijack(
            &format!("/containers/{id}/attach"),
            &query(&[
                ("stream", "1".into()),
                ("stdin", (stdin as u8).to_string()),
                ("stdout", "1".into()),
                ("stderr", "1".into()),
                ("detachKeys", keys.unwrap_or_default().to_string()),
            ]),
            None,
        )
        .await?;
    let status = api.wait(&id, "next-exit").await?;
    let raw = (tty && stdin).then(stdio::RawTerminal::enter).flatten();
    if start {
        api.post(&format!("/containers/{id}/start"), "", None)
            .await?;
    }
    if tty {
        stdio::follow_window_size(api, format!("/containers/{id}/resize"));
    } else if sig_proxy {
        stdio::proxy_signals(api, &id);
    }
    let streamed = stdio::session(conn, tty, stdin, Some(detach)).await;
    drop(raw);
    if streamed? == stdio::Ended::Detached {
        return Ok(None);
    }
    let running = !start
        && api
            .get(&format!("/containers/{id}/json"), "")
            .await
            .ok()
            .and_then(|v| v["State"]["Running"].as_bool())
            .unwrap_or(false);
    if running {
        // The output ended (stdin closed) but the container lives on: nothing to wait for.
        return Ok(Some(0));
    }
    status.await.map(Some)
}

/// `berth start`.
pub async fn start(api: &Api, a: StartArgs) -> anyhow::Result<()> {
    if a.attach || a.interactive {
        if a.containers.len() > 1 {
            anyhow::bail!("you cannot start and attach multiple containers at once");
        }
        let code = attach_until_exit(
            api,
            &a.containers[0],
            a.interactive,
            true,
            true,
            a.detach_keys.as_deref(),
        )
        .await?;
        // Detached: the docker CLI's start -ai exits 0, silently.
        return match code.unwrap_or(0) {
            0 => Ok(()),
            c => Err(exit(c as i32)),
        };
    }
    crate::client::each(&a.containers, |n| async move {
        api.post(&format!("/containers/{}/start", seg(&n)), "", None)
            .await?;
        Ok(Some(n))
    })
    .await
}

/// `berth attach`.
pub async fn attach(api: &Api, a: AttachArgs) -> anyhow::Result<()> {
    let info = inspect(api, &a.container).await?;
    if info["State"]["Paused"].as_bool() == Some(true) {
        anyhow::bail!("You cannot attach to a paused container, unpause it first");
    }
    if info["State"]["Running"].as_bool() != Some(true) {
        anyhow::bail!("You cannot attach to a stopped container, start it first");
    }
    let code = attach_until_exit(
        api,
        &a.container,
        !a.no_stdin,
        a.sig_proxy,
        false,
        a.detach_keys.as_deref(),
    )
    .await?;
    match code {
        None => Err(escaped()),
        Some(0) => Ok(()),
        Some(c) => Err(exit(c as i32)),
    }
}

/// What `attach` and `exec` end with when the user detached, as the docker CLI's.
pub fn escaped() -> anyhow::Error {
    Exit {
        code: 1,
        message: "read escape sequence".into(),
    }
    .into()
}
