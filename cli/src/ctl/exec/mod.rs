//! `swarmctl task exec -i/-t`: an interactive session through the managers (`ExecStream`):
//! stdin streamed as typed, the window size at start and on every SIGWINCH, the remote
//! program's output as it comes, and its exit code as swarmctl's.

pub mod term;

use anyhow::Context;
use shoal_proto::pb;
use std::io::{IsTerminal, Read, Write};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Messages in flight to the managers.
const INPUTS: usize = 16;

/// What the session reads: stdin chunks (the channel closing is the end of stdin), new window
/// sizes as (rows, columns), and a request to give up (a signal to swarmctl).
#[derive(Debug)]
pub struct Inputs {
    /// Stdin, when streamed.
    pub stdin: Option<mpsc::Receiver<Vec<u8>>>,
    /// Window sizes.
    pub resizes: mpsc::Receiver<(u16, u16)>,
}

/// Runs `start` over `client` with `inputs`, writing the program's output to `out` and `err`;
/// returns its exit code.
pub async fn session(
    client: &mut crate::client::Control,
    start: pb::ExecStart,
    inputs: Inputs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> anyhow::Result<i32> {
    let (tx, rx) = mpsc::channel(INPUTS);
    let first = pb::ExecInput {
        start: Some(start),
        ..Default::default()
    };
    tx.send(first).await?;
    // Forwards the inputs for as long as the session lives; its sender keeps the stream open
    // after the end of stdin (the stream ending means that swarmctl left).
    let forward = tokio::spawn(forward(inputs, tx));
    let _forward = AbortOnDrop(forward);
    let mut output = client
        .exec_stream(ReceiverStream::new(rx))
        .await
        .context("exec")?
        .into_inner();
    while let Some(o) = output.message().await.context("exec")? {
        if !o.stdout.is_empty() {
            out.write_all(&o.stdout)?;
            out.flush()?;
        }
        if !o.stderr.is_empty() {
            err.write_all(&o.stderr)?;
            err.flush()?;
        }
        if !o.error.is_empty() {
            anyhow::bail!("{}", o.error);
        }
        if o.exited {
            return Ok(o.exit_code);
        }
    }
    anyhow::bail!("the session ended without the command's exit code")
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn forward(inputs: Inputs, tx: mpsc::Sender<pb::ExecInput>) {
    let Inputs { stdin, mut resizes } = inputs;
    let mut stdin_open = stdin.is_some();
    // Without stdin, a channel that is closed already (and never polled).
    let mut stdin = stdin.unwrap_or_else(|| mpsc::channel(1).1);
    loop {
        let msg = tokio::select! {
            chunk = stdin.recv(), if stdin_open => match chunk {
                Some(data) => pb::ExecInput { stdin: data, ..Default::default() },
                None => {
                    stdin_open = false;
                    pb::ExecInput { close_stdin: true, ..Default::default() }
                }
            },
            Some((rows, cols)) = resizes.recv() => pb::ExecInput {
                resize: Some(pb::TermSize { rows: rows.into(), cols: cols.into() }),
                ..Default::default()
            },
            else => {
                // Nothing more to send: hold the stream open until the session ends.
                std::future::pending::<()>().await;
                return;
            }
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}

/// `swarmctl task exec [-i] [-t] TASK CMD…` on this process's own terminal.
pub async fn run(
    client: &mut crate::client::Control,
    task: String,
    cmd: Vec<String>,
    interactive: bool,
    tty: bool,
) -> anyhow::Result<i32> {
    let size = if tty {
        term::size(std::io::stdout())
    } else {
        None
    };
    let start = pb::ExecStart {
        task,
        cmd,
        tty,
        stdin: interactive,
        size: size.map(|(rows, cols)| pb::TermSize {
            rows: rows.into(),
            cols: cols.into(),
        }),
    };
    let stdin = interactive.then(read_stdin).transpose()?;
    let (resize_tx, resizes) = mpsc::channel(4);
    let _winch = tty
        .then(|| watch_size(resize_tx))
        .transpose()?
        .map(AbortOnDrop);
    // Raw only once everything that can fail before the session did; dropped (restored) before
    // this returns, whatever it returns.
    let _raw = if tty && interactive {
        term::raw_stdin().context("could not put the terminal in raw mode")?
    } else {
        None
    };
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let session = session(client, start, Inputs { stdin, resizes }, &mut out, &mut err);
    // SIGTERM or SIGHUP to swarmctl ends the session (and so the remote program), and the
    // terminal is restored on the way out; Ctrl-C in raw mode is a byte for the program.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    tokio::select! {
        r = session => r,
        _ = term.recv() => anyhow::bail!("terminated"),
        _ = hup.recv() => anyhow::bail!("hung up"),
        _ = int.recv() => anyhow::bail!("interrupted"),
    }
}

/// Reads stdin on a thread of its own (a blocking read; the thread is left behind when the
/// session ends first, and goes with the process).
fn read_stdin() -> anyhow::Result<mpsc::Receiver<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(INPUTS);
    std::thread::Builder::new()
        .name("exec-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = vec![0u8; 8 * 1024];
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        })?;
    Ok(rx)
}

/// Sends the terminal's size on every SIGWINCH.
fn watch_size(tx: mpsc::Sender<(u16, u16)>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    Ok(tokio::spawn(async move {
        while winch.recv().await.is_some() {
            let out = std::io::stdout();
            if !out.is_terminal() {
                continue;
            }
            if let Some(s) = term::size(out) {
                if tx.send(s).await.is_err() {
                    return;
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests;
