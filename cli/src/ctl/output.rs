//! Where output goes, Docker-style tables, and the small formatting rules shared by commands.

use serde_json::Value;
use std::cmp::Ordering;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

/// Output format chosen with `--format` (none given: tables, but JSON for `inspect`, as Docker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human tables and messages (readable key/value views for `inspect`).
    Table,
    /// JSON (one document per command).
    Json,
}

/// Standard output, or a buffer in tests. Write errors (a closed pipe) are ignored: there is
/// nobody left to tell.
pub struct Out {
    w: Box<dyn Write + Send>,
    /// Whether progress may be redrawn in place.
    pub tty: bool,
}

/// The buffer behind [`Out::buffer`].
#[derive(Clone, Default)]
pub struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    /// Everything written so far.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Out {
    /// The process's standard output.
    pub fn stdout() -> Out {
        Out {
            tty: std::io::stdout().is_terminal(),
            w: Box::new(std::io::stdout()),
        }
    }

    /// An in-memory output (never a TTY) and a handle to read it.
    pub fn buffer() -> (Out, SharedBuf) {
        let buf = SharedBuf::default();
        (
            Out {
                w: Box::new(buf.clone()),
                tty: false,
            },
            buf,
        )
    }

    /// Writes `s` as is.
    pub fn print(&mut self, s: &str) {
        let _ = self.w.write_all(s.as_bytes());
        let _ = self.w.flush();
    }

    /// Writes `s` and a newline.
    pub fn line(&mut self, s: &str) {
        let _ = self.w.write_all(s.as_bytes());
        let _ = self.w.write_all(b"\n");
        let _ = self.w.flush();
    }

    /// Writes `s` and a newline; fails when nobody reads any more (a closed pipe).
    pub fn try_line(&mut self, s: &str) -> std::io::Result<()> {
        self.w.write_all(s.as_bytes())?;
        self.w.write_all(b"\n")?;
        self.w.flush()
    }

    /// Pretty-printed JSON and a newline.
    pub fn json(&mut self, v: &Value) {
        let s = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into());
        self.line(&s);
    }
}

/// A readable view of one object, as `docker service inspect --pretty` prints it: `Key:` padded
/// to a column, the value after it; a key starting with spaces is nested under the one above.
#[derive(Debug, Clone)]
pub struct KeyValues {
    width: usize,
    text: String,
}

impl KeyValues {
    /// Values start in column `width` (keys that are longer push them right).
    pub fn new(width: usize) -> KeyValues {
        KeyValues {
            width,
            text: String::new(),
        }
    }

    /// Adds `key: value` (a heading when `value` is empty).
    pub fn kv(&mut self, key: &str, value: &str) {
        // A key as long as the column still gets a space before its value.
        let w = self.width.max(key.len() + 2);
        let line = format!("{:<w$}{value}", format!("{key}:"));
        self.text.push_str(line.trim_end());
        self.text.push('\n');
    }

    /// The lines added so far, each ending in a newline.
    pub fn into_string(self) -> String {
        self.text
    }
}

/// A table laid out like Docker's (Go tabwriter, min width 10, padding 3): each column but the
/// last is at least 10 wide and 3 wider than its widest cell. Trailing spaces are trimmed.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are empty, extra ones dropped).
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// The table as text, one line per row, each ending in a newline.
    pub fn render(&self) -> String {
        let n = self.header.len();
        let width = |i: usize| {
            let widest = std::iter::once(&self.header)
                .chain(&self.rows)
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0);
            (widest + 3).max(10)
        };
        let widths: Vec<usize> = (0..n).map(width).collect();
        let mut s = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 < n {
                    line.push_str(&format!("{cell:<w$}", w = widths[i]));
                } else {
                    line.push_str(cell);
                }
            }
            s.push_str(line.trim_end());
            s.push('\n');
        }
        s
    }
}

/// An id as tables show it: the first 12 characters unless `no_trunc`.
pub fn id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.chars().take(12).collect()
    }
}

/// Docker's `units.HumanDuration`, lowercased as `docker service ps` shows it
/// ("less than a second", "5 seconds", "about a minute", "3 hours", "2 days").
pub fn human_duration(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    let minutes = secs / 60;
    let hours = (ms.max(0) as f64 / 3_600_000.0 + 0.5) as i64;
    match () {
        _ if secs < 1 => "less than a second".into(),
        _ if secs == 1 => "1 second".into(),
        _ if secs < 60 => format!("{secs} seconds"),
        _ if minutes == 1 => "about a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "about an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", ms / 3_600_000 / 24 / 365),
    }
}

/// `"5 seconds ago"` for a timestamp `then_ms` seen at `now_ms`; empty for a zero timestamp.
pub fn ago(now_ms: i64, then_ms: i64) -> String {
    if then_ms <= 0 {
        return String::new();
    }
    format!("{} ago", human_duration(now_ms - then_ms))
}

/// Orders `node2` before `node10` (Docker sorts hostnames this way).
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                let db = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
                let (na, nb) = (
                    a[..da].trim_start_matches('0'),
                    b[..db].trim_start_matches('0'),
                );
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                a = &a[x.len_utf8()..];
                b = &b[y.len_utf8()..];
            }
        }
    }
}

/// A byte count the way Docker prints limits: `64MiB`, `1.5GiB`, `512B`.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    let num = format!("{v:.2}");
    format!(
        "{}{}",
        num.trim_end_matches('0').trim_end_matches('.'),
        UNITS[u]
    )
}

/// A duration in milliseconds as `500ms`, `5s`, `1m30s`.
pub fn millis(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s, rest) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || rest > 0 {
        if rest > 0 {
            out.push_str(&format!(
                "{}s",
                format!("{s}.{rest:03}").trim_end_matches('0')
            ));
        } else {
            out.push_str(&format!("{s}s"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_align_like_docker() {
        let mut t = Table::new(&["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS"]);
        t.row(vec![
            "abcdefabcdef".into(),
            "manager1".into(),
            "Ready".into(),
            "Active".into(),
            "Leader".into(),
        ]);
        t.row(vec![
            "0123456789ab".into(),
            "worker1".into(),
            "Down".into(),
            "Drain".into(),
            "".into(),
        ]);
        let want = "\
ID             HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS
abcdefabcdef   manager1   Ready     Active         Leader
0123456789ab   worker1    Down      Drain
";
        assert_eq!(t.render(), want);
    }

    #[test]
    fn table_with_no_rows_prints_the_header() {
        let t = Table::new(&["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]);
        assert_eq!(
            t.render(),
            "ID        NAME      MODE      REPLICAS   IMAGE     PORTS\n"
        );
    }

    #[test]
    fn ids_truncate_to_12() {
        assert_eq!(id("0123456789abcdefghijklmno", false), "0123456789ab");
        assert_eq!(
            id("0123456789abcdefghijklmno", true),
            "0123456789abcdefghijklmno"
        );
        assert_eq!(id("short", false), "short");
    }

    #[test]
    fn time_ago_like_docker() {
        let s = 1000;
        assert_eq!(human_duration(0), "less than a second");
        assert_eq!(human_duration(999), "less than a second");
        assert_eq!(human_duration(s), "1 second");
        assert_eq!(human_duration(5 * s), "5 seconds");
        assert_eq!(human_duration(59 * s), "59 seconds");
        assert_eq!(human_duration(60 * s), "about a minute");
        assert_eq!(human_duration(119 * s), "about a minute");
        assert_eq!(human_duration(120 * s), "2 minutes");
        assert_eq!(human_duration(59 * 60 * s), "59 minutes");
        assert_eq!(human_duration(60 * 60 * s), "about an hour");
        assert_eq!(human_duration(3 * 3600 * s), "3 hours");
        assert_eq!(human_duration(50 * 3600 * s), "2 days");
        assert_eq!(human_duration(15 * 24 * 3600 * s), "2 weeks");
        assert_eq!(human_duration(90 * 24 * 3600 * s), "3 months");
        assert_eq!(human_duration(800 * 24 * 3600 * s), "2 years");
        assert_eq!(human_duration(-5 * s), "less than a second");
        assert_eq!(ago(10_000, 5_000), "5 seconds ago");
        assert_eq!(ago(10_000, 0), "");
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["worker10", "manager1", "worker2", "worker1", "manager01x"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            ["manager1", "manager01x", "worker1", "worker2", "worker10"]
        );
    }

    #[test]
    fn units() {
        assert_eq!(bytes(64 << 20), "64MiB");
        assert_eq!(bytes(3 << 29), "1.5GiB");
        assert_eq!(bytes(512), "512B");
        assert_eq!(millis(0), "0s");
        assert_eq!(millis(500), "500ms");
        assert_eq!(millis(5000), "5s");
        assert_eq!(millis(90_000), "1m30s");
        assert_eq!(millis(1500), "1.5s");
        assert_eq!(millis(3_600_000), "1h");
    }
}
