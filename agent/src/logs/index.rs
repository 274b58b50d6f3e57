//! The sidecar index of a task's log: when each byte of `stdout.log` / `stderr.log` was first
//! seen, so that lines carry timestamps without the task's output passing through `swarmd`
//! (tasks write straight into their log files and outlive `swarmd`).
//!
//! `stdout.idx` beside `stdout.log` is a sequence of fixed 16-byte records, `(end, ms)` as two
//! little-endian 64-bit integers: every byte before `end` had been written by `ms` (ms since the
//! epoch). Each stamp appends one record when the log grew, so records are sorted by `end`, and
//! `ms` never decreases (a clock that steps back is clamped). A byte at offset `o` was written
//! at the `ms` of the first record whose `end > o`; a line's time is that of its last byte.
//!
//! One record per stamp that saw growth (every poll period at most), not one per line: a chatty
//! task costs 16 bytes per period, and a line's time is precise to the period, which is what a
//! poll can see anyway.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes per record.
pub const RECORD: u64 = 16;

/// One record: every byte before `end` was written by `ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Offset just past the bytes this record covers.
    pub end: u64,
    /// When they had been written (ms since the epoch).
    pub ms: i64,
}

impl Stamp {
    fn encode(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.end.to_le_bytes());
        b[8..].copy_from_slice(&self.ms.to_le_bytes());
        b
    }

    fn decode(b: &[u8; 16]) -> Stamp {
        let mut end = [0u8; 8];
        let mut ms = [0u8; 8];
        end.copy_from_slice(&b[..8]);
        ms.copy_from_slice(&b[8..]);
        Stamp {
            end: u64::from_le_bytes(end),
            ms: i64::from_le_bytes(ms),
        }
    }
}

/// The index of the log at `log`: `stdout.log` → `stdout.idx`.
pub fn path_of(log: &Path) -> PathBuf {
    log.with_extension("idx")
}

/// Appends `s` to the index at `idx` (created if missing), in one write.
pub fn append(idx: &Path, s: Stamp) -> io::Result<()> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(idx)?
        .write_all(&s.encode())
}

/// An index opened for reading. A torn record at the end (a crash mid-write) is ignored.
#[derive(Debug)]
pub struct Index {
    file: File,
    count: u64,
}

impl Index {
    /// Opens the index at `idx`; `None` when there is none yet.
    pub fn open(idx: &Path) -> io::Result<Option<Index>> {
        let file = match File::open(idx) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let count = file.metadata()?.len() / RECORD;
        Ok(Some(Index { file, count }))
    }

    /// How many records it holds.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Record `i` (< [`Index::len`]).
    pub fn get(&self, i: u64) -> io::Result<Stamp> {
        let mut b = [0u8; 16];
        self.file.read_exact_at(&mut b, i * RECORD)?;
        Ok(Stamp::decode(&b))
    }

    /// The last record.
    pub fn last(&self) -> io::Result<Option<Stamp>> {
        match self.count {
            0 => Ok(None),
            n => self.get(n - 1).map(Some),
        }
    }

    /// The first record satisfying `past` (a predicate false then true along the records), or
    /// [`Index::len`] when none does.
    fn first(&self, past: impl Fn(Stamp) -> bool) -> io::Result<u64> {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if past(self.get(mid)?) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }

    /// The first record covering offset `o` (`end > o`), or [`Index::len`].
    pub fn covering(&self, o: u64) -> io::Result<u64> {
        self.first(|s| s.end > o)
    }

    /// The first record written at or after `ms`, or [`Index::len`].
    pub fn since(&self, ms: i64) -> io::Result<u64> {
        self.first(|s| s.ms >= ms)
    }
}

/// The time of each byte, asked for in increasing offsets: walks the records once.
#[derive(Debug)]
pub struct Clock<'a> {
    index: Option<&'a Index>,
    next: u64,
    cur: Option<Stamp>,
}

impl<'a> Clock<'a> {
    /// A clock over `index` for offsets from `from` on.
    pub fn new(index: Option<&'a Index>, from: u64) -> io::Result<Clock<'a>> {
        let next = match index {
            Some(i) => i.covering(from)?,
            None => 0,
        };
        let mut c = Clock {
            index,
            next,
            cur: None,
        };
        c.advance()?;
        Ok(c)
    }

    fn advance(&mut self) -> io::Result<()> {
        self.cur = match self.index {
            Some(i) if self.next < i.len() => {
                let s = i.get(self.next)?;
                self.next += 1;
                Some(s)
            }
            _ => None,
        };
        Ok(())
    }

    /// When the byte at `o` was written; `None` when no record covers it (not stamped yet).
    /// Offsets must not decrease from one call to the next.
    pub fn at(&mut self, o: u64) -> io::Result<Option<i64>> {
        while let Some(s) = self.cur {
            if s.end > o {
                return Ok(Some(s.ms));
            }
            self.advance()?;
        }
        Ok(None)
    }
}
