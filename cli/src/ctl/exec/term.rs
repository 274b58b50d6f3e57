//! The local terminal during `task exec -t`: raw mode while the remote program runs, restored
//! however the session ends, and its size.

use nix::sys::termios::{self, SetArg, Termios};
use std::io::IsTerminal;
use std::os::fd::{AsFd, OwnedFd};

/// The terminal in raw mode (no echo, no line editing, Ctrl-C a byte rather than SIGINT) until
/// this is dropped, which puts back the settings found: on return, on error and on a panic's
/// unwinding alike.
#[derive(Debug)]
pub struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// Puts the terminal `fd` in raw mode.
    pub fn enable(fd: impl AsFd) -> std::io::Result<RawMode> {
        let fd = fd.as_fd().try_clone_to_owned()?;
        let saved = termios::tcgetattr(&fd)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&fd, SetArg::TCSANOW, &raw)?;
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(&self.fd, SetArg::TCSANOW, &self.saved);
    }
}

/// Raw mode on stdin when it is a terminal (otherwise there is nothing to set).
pub fn raw_stdin() -> std::io::Result<Option<RawMode>> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(None);
    }
    RawMode::enable(stdin).map(Some)
}

/// The size of terminal `fd` as (rows, columns), if it is one.
pub fn size(fd: impl AsFd) -> Option<(u16, u16)> {
    let ws = rustix::termios::tcgetwinsize(fd).ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::termios::{InputFlags, LocalFlags};

    #[test]
    fn raw_mode_is_undone_when_dropped() {
        let ws = nix::pty::Winsize {
            ws_row: 33,
            ws_col: 99,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&ws), None).unwrap();
        let before = termios::tcgetattr(&pty.slave).unwrap();
        assert!(before
            .local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ECHO));
        {
            let _raw = RawMode::enable(&pty.slave).unwrap();
            let now = termios::tcgetattr(&pty.slave).unwrap();
            assert!(!now
                .local_flags
                .intersects(LocalFlags::ICANON | LocalFlags::ECHO));
            assert!(
                !now.local_flags.contains(LocalFlags::ISIG),
                "Ctrl-C must reach the remote program as a byte"
            );
            assert!(!now.input_flags.contains(InputFlags::ICRNL));
        }
        let after = termios::tcgetattr(&pty.slave).unwrap();
        assert_eq!(after.local_flags, before.local_flags);
        assert_eq!(after.input_flags, before.input_flags);
        assert_eq!(after.output_flags, before.output_flags);
        assert_eq!(size(&pty.slave), Some((33, 99)));
    }

    #[test]
    fn raw_mode_is_undone_on_an_error_path_too() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let before = termios::tcgetattr(&pty.slave).unwrap();
        let failing = || -> anyhow::Result<()> {
            let _raw = RawMode::enable(&pty.slave)?;
            anyhow::bail!("the session broke");
        };
        assert!(failing().is_err());
        let after = termios::tcgetattr(&pty.slave).unwrap();
        assert_eq!(after.local_flags, before.local_flags);
    }

    #[test]
    fn a_pipe_is_no_terminal() {
        let (r, _w) = std::io::pipe().unwrap();
        assert_eq!(size(&r), None);
        assert!(RawMode::enable(&r).is_err());
    }
}
