//! Reading a task's log as lines with their times: a range for a follow, or the history a
//! request asks for (`--tail`, `--since`, `--tail 0`).

use super::index::{self, Clock, Index};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// A line longer than this comes in pieces of this size (Docker splits its log lines at 16 KiB
/// too), so a batch never waits for a newline that may not come.
pub const MAX_LINE: usize = 16 * 1024;

/// Most bytes of one stream a history goes back (the end of the log).
pub const MAX_HISTORY: u64 = 4 << 20;

/// One line (or piece of a long line) of a task's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The offset just past the line (its newline included): where reading goes on.
    pub end: u64,
    /// When it was written (ms since the epoch).
    pub ms: i64,
    /// The line without its newline.
    pub data: Vec<u8>,
}

/// Which lines written before a request it wants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct History {
    /// The last N lines (0: all).
    pub tail: u32,
    /// Only lines written at or after this (ms; 0: no limit).
    pub since_ms: i64,
    /// None at all (`--tail 0`).
    pub skip: bool,
}

/// The lines of the log at `log` in `[from, to)`, reading at most `budget` bytes, and the offset
/// where the next read starts. `to` must not be past what the index covers (see
/// [`super::LogBook::stamp`]). An unfinished last line is left for later unless `all` (the task
/// ended: nothing will finish it).
pub fn range(
    log: &Path,
    from: u64,
    to: u64,
    all: bool,
    budget: usize,
) -> io::Result<(Vec<Line>, u64)> {
    if to <= from {
        return Ok((Vec::new(), from));
    }
    let want = usize::try_from(to - from).unwrap_or(usize::MAX).min(budget);
    let buf = read_at(log, from, want)?;
    let whole = (buf.len() as u64) == to - from;
    let index = Index::open(&index::path_of(log))?;
    let (lines, used) = split(&buf, from, all && whole, index.as_ref())?;
    Ok((lines, from + used as u64))
}

/// The lines `h` asks for among those of the log at `log` before `to` (what the index covers),
/// and the offset a follow goes on from. `all`: the task ended (its unfinished last line counts).
pub fn history(log: &Path, h: &History, to: u64, all: bool) -> io::Result<(Vec<Line>, u64)> {
    if h.skip {
        return Ok((Vec::new(), line_start(log, to, all)?));
    }
    let index = Index::open(&index::path_of(log))?;
    let mut start = to.saturating_sub(MAX_HISTORY);
    if h.since_ms > 0 {
        // Lines whose last byte lies before the first record at or after `since` are older.
        let boundary = match &index {
            Some(ix) => match ix.since(h.since_ms)? {
                0 => 0,
                i if i == ix.len() => return Ok((Vec::new(), line_start(log, to, all)?)),
                i => ix.get(i - 1)?.end,
            },
            None => 0,
        };
        start = start.max(boundary.saturating_sub(MAX_LINE as u64));
    }
    let buf = read_at(
        log,
        start,
        usize::try_from(to - start).unwrap_or(usize::MAX),
    )?;
    // Begin at a line's start: drop what precedes the first newline unless at the log's start.
    let skip = if start == 0 {
        0
    } else {
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => buf.len(),
        }
    };
    let (mut lines, used) = split(&buf[skip..], start + skip as u64, all, index.as_ref())?;
    if h.since_ms > 0 {
        lines.retain(|l| l.ms >= h.since_ms);
    }
    if h.tail > 0 && lines.len() > h.tail as usize {
        lines.drain(..lines.len() - h.tail as usize);
    }
    Ok((lines, start + (skip + used) as u64))
}

/// Where a follow that wants no history starts: `to`, or the start of an unfinished last line
/// (so that it comes whole once finished).
fn line_start(log: &Path, to: u64, all: bool) -> io::Result<u64> {
    if all || to == 0 {
        return Ok(to);
    }
    let from = to.saturating_sub(MAX_LINE as u64);
    let buf = read_at(log, from, (to - from) as usize)?;
    Ok(match buf.iter().rposition(|&b| b == b'\n') {
        Some(i) => from + i as u64 + 1,
        // A piece's worth without a newline: it comes in pieces from `to` on anyway.
        None if buf.len() == MAX_LINE => to,
        None => from,
    })
}

/// Up to `want` bytes of `log` from `from` (fewer at its end; none when it does not exist).
fn read_at(log: &Path, from: u64, want: usize) -> io::Result<Vec<u8>> {
    let mut f = match File::open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    f.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::with_capacity(want.min(1 << 20));
    f.take(want as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Splits `buf` (the log from offset `base`) into lines and pieces of at most [`MAX_LINE`],
/// timed by `index`; returns them and the bytes used. An unfinished last line shorter than a
/// piece is left unless `all`.
fn split(
    buf: &[u8],
    base: u64,
    all: bool,
    index: Option<&Index>,
) -> io::Result<(Vec<Line>, usize)> {
    let mut clock = Clock::new(index, base)?;
    let mut lines = Vec::new();
    let mut last_ms = 0;
    let mut pos = 0;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let (len, used) = match rest.iter().take(MAX_LINE + 1).position(|&b| b == b'\n') {
            Some(nl) if nl <= MAX_LINE => (nl, nl + 1),
            _ if rest.len() >= MAX_LINE => (MAX_LINE, MAX_LINE),
            _ if all => (rest.len(), rest.len()),
            _ => break,
        };
        let end = base + (pos + used) as u64;
        // Not covered (a race with the stamp): as late as the latest line known.
        let ms = clock.at(end - 1)?.unwrap_or(last_ms);
        last_ms = ms;
        lines.push(Line {
            end,
            ms,
            data: rest[..len].to_vec(),
        });
        pos += used;
    }
    Ok((lines, pos))
}
