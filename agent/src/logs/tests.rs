//! The log index, reading lines with their times, and a follow against a recording leader.

use super::book::{log_path, LogBook};
use super::follow::{self, Ctx, Phase, Publish, PublishError, Tasks};
use super::index::{self, Clock, Index, Stamp};
use super::read::{self, History, Line, MAX_LINE};
use crate::executor::controller::BoxFuture;
use shoal_proto::pb;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn texts(lines: &[Line]) -> Vec<String> {
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(&l.data).into_owned())
        .collect()
}

#[test]
fn the_index_finds_records_by_offset_and_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("stdout.idx");
    assert!(Index::open(&idx).unwrap().is_none());
    for (end, ms) in [(10, 100), (25, 200), (40, 200), (70, 350)] {
        index::append(&idx, Stamp { end, ms }).unwrap();
    }
    // A torn record (a crash mid-write) is not read.
    append(&idx, "xyz");
    let ix = Index::open(&idx).unwrap().unwrap();
    assert_eq!(ix.len(), 4);
    assert_eq!(ix.last().unwrap(), Some(Stamp { end: 70, ms: 350 }));
    assert_eq!(ix.covering(0).unwrap(), 0);
    assert_eq!(ix.covering(9).unwrap(), 0);
    assert_eq!(ix.covering(10).unwrap(), 1);
    assert_eq!(ix.covering(69).unwrap(), 3);
    assert_eq!(ix.covering(70).unwrap(), 4, "not covered yet");
    assert_eq!(ix.since(0).unwrap(), 0);
    assert_eq!(ix.since(150).unwrap(), 1);
    assert_eq!(ix.since(200).unwrap(), 1);
    assert_eq!(ix.since(201).unwrap(), 3);
    assert_eq!(ix.since(351).unwrap(), 4);
    let mut c = Clock::new(Some(&ix), 24).unwrap();
    let times: Vec<Option<i64>> = [24, 25, 39, 40, 69, 70]
        .iter()
        .map(|&o| c.at(o).unwrap())
        .collect();
    assert_eq!(
        times,
        [Some(200), Some(200), Some(200), Some(350), Some(350), None]
    );
    assert_eq!(
        index::path_of(Path::new("/t/stdout.log")),
        Path::new("/t/stdout.idx")
    );
}

#[test]
fn a_stamp_records_growth_once_with_a_time_that_never_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stdout.log");
    let book = LogBook::default();
    assert_eq!(book.stamp_at(&log, at(1_000)).unwrap(), 0, "no log yet");
    append(&log, "a\nb\n");
    assert_eq!(book.stamp_at(&log, at(1_000)).unwrap(), 4);
    assert_eq!(
        book.stamp_at(&log, at(2_000)).unwrap(),
        4,
        "no growth: no record"
    );
    append(&log, "c\n");
    // A clock that stepped back: the time stays that of the record before.
    assert_eq!(book.stamp_at(&log, at(500)).unwrap(), 6);
    let ix = Index::open(&index::path_of(&log)).unwrap().unwrap();
    assert_eq!(
        (ix.get(0).unwrap(), ix.get(1).unwrap(), ix.len()),
        (Stamp { end: 4, ms: 1_000 }, Stamp { end: 6, ms: 1_000 }, 2)
    );
    // Live logs are cached, and their record is the one on disk.
    book.live("t1", dir.path().to_path_buf());
    append(&log, "d\n");
    let now = SystemTime::now();
    assert_eq!(book.stamp_at(&log, now).unwrap(), 8);
    let last = Index::open(&index::path_of(&log))
        .unwrap()
        .unwrap()
        .last()
        .unwrap()
        .unwrap();
    let mtime = std::fs::metadata(&log).unwrap().modified().unwrap();
    let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    assert_eq!(
        last,
        Stamp {
            end: 8,
            ms: ms(mtime).min(ms(now))
        },
        "the log's last write"
    );
    assert!(book.is_live("t1"));
    book.ended("t1");
    assert!(!book.is_live("t1"));
}

/// A log with `lines` stamped at the given times (ms).
fn stamped(dir: &Path, chunks: &[(&str, u64)]) -> (PathBuf, LogBook) {
    let log = dir.join("stdout.log");
    let book = LogBook::default();
    for (text, ms) in chunks {
        append(&log, text);
        book.stamp_at(&log, at(*ms)).unwrap();
    }
    (log, book)
}

#[test]
fn a_range_is_whole_lines_with_their_times() {
    let dir = tempfile::tempdir().unwrap();
    let (log, book) = stamped(dir.path(), &[("one\ntw", 1_000), ("o\nthree\npart", 2_000)]);
    let to = book.stamp(&log).unwrap();
    let (lines, pos) = read::range(&log, 0, to, false, 1 << 20).unwrap();
    assert_eq!(texts(&lines), ["one", "two", "three"]);
    // A line's time is its last byte's: "two" was finished in the second chunk.
    let ms: Vec<i64> = lines.iter().map(|l| l.ms).collect();
    assert_eq!(ms, [1_000, 2_000, 2_000]);
    let ends: Vec<u64> = lines.iter().map(|l| l.end).collect();
    assert_eq!(ends, [4, 8, 14]);
    assert_eq!(pos, 14, "the unfinished line waits");
    // A task that ended: its unfinished line counts.
    let (lines, pos) = read::range(&log, pos, to, true, 1 << 20).unwrap();
    assert_eq!((texts(&lines), pos), (vec!["part".to_string()], to));
    // A budget cuts at a line.
    let (lines, pos) = read::range(&log, 0, to, false, 6).unwrap();
    assert_eq!((texts(&lines), pos), (vec!["one".to_string()], 4));
    assert!(read::range(&log, to, to, true, 10).unwrap().0.is_empty());
}

#[test]
fn long_lines_come_in_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(MAX_LINE * 2 + 5);
    let (log, book) = stamped(dir.path(), &[(&format!("{long}\nok\n"), 1_000)]);
    let to = book.stamp(&log).unwrap();
    let (lines, pos) = read::range(&log, 0, to, false, 1 << 20).unwrap();
    let lens: Vec<usize> = lines.iter().map(|l| l.data.len()).collect();
    assert_eq!(lens, [MAX_LINE, MAX_LINE, 5, 2]);
    assert_eq!(pos, to);
    assert_eq!(lines[1].end, 2 * MAX_LINE as u64);
    // An unfinished line a piece long is sent as it comes.
    let dir = tempfile::tempdir().unwrap();
    let (log, book) = stamped(dir.path(), &[(&"y".repeat(MAX_LINE + 1), 1_000)]);
    let to = book.stamp(&log).unwrap();
    let (lines, pos) = read::range(&log, 0, to, false, 1 << 20).unwrap();
    assert_eq!((lines.len(), pos), (1, MAX_LINE as u64));
}

#[test]
fn history_takes_tail_since_and_none() {
    let dir = tempfile::tempdir().unwrap();
    let (log, book) = stamped(
        dir.path(),
        &[("a\nb\n", 1_000), ("c\nd\n", 2_000), ("e\nunfin", 3_000)],
    );
    let to = book.stamp(&log).unwrap();
    let h = |tail, since_ms, skip| History {
        tail,
        since_ms,
        skip,
    };
    let (all, pos) = read::history(&log, &h(0, 0, false), to, false).unwrap();
    assert_eq!(texts(&all), ["a", "b", "c", "d", "e"]);
    assert_eq!(pos, 10, "a follow goes on at the unfinished line");
    let (tail, _) = read::history(&log, &h(2, 0, false), to, false).unwrap();
    assert_eq!(texts(&tail), ["d", "e"]);
    let (since, _) = read::history(&log, &h(0, 1_500, false), to, false).unwrap();
    assert_eq!(texts(&since), ["c", "d", "e"]);
    let (since, _) = read::history(&log, &h(0, 2_000, false), to, false).unwrap();
    assert_eq!(texts(&since), ["c", "d", "e"], "at the time counts");
    let (both, _) = read::history(&log, &h(1, 1_500, false), to, false).unwrap();
    assert_eq!(texts(&both), ["e"]);
    let (none, pos) = read::history(&log, &h(0, 9_000, false), to, false).unwrap();
    assert!(none.is_empty());
    assert_eq!(pos, 10);
    let (skip, pos) = read::history(&log, &h(0, 0, true), to, false).unwrap();
    assert!(skip.is_empty());
    assert_eq!(pos, 10, "`--tail 0`: from the unfinished line on");
    let (ended, pos) = read::history(&log, &h(0, 0, false), to, true).unwrap();
    assert_eq!(texts(&ended).last().map(String::as_str), Some("unfin"));
    assert_eq!(pos, to);
    // No log at all: nothing, from the start.
    let none = dir.path().join("stderr.log");
    assert_eq!(
        read::history(&none, &h(0, 0, false), 0, false).unwrap(),
        (Vec::new(), 0)
    );
}

#[test]
fn history_goes_back_a_window_from_a_line_start() {
    let dir = tempfile::tempdir().unwrap();
    let line = format!("{}\n", "z".repeat(1000));
    let n = (read::MAX_HISTORY / 1001 + 10) as usize;
    let (log, book) = stamped(dir.path(), &[(&line.repeat(n), 1_000)]);
    let to = book.stamp(&log).unwrap();
    let (lines, pos) = read::history(&log, &History::default(), to, false).unwrap();
    assert!(
        lines.iter().all(|l| l.data.len() == 1000),
        "whole lines only"
    );
    assert_eq!(lines.len() as u64, read::MAX_HISTORY / 1001);
    assert_eq!(pos, to);
}

/// Tasks whose logs are in `dir/<id>`, with phases the test sets.
#[derive(Debug, Default)]
struct FakeTasks {
    dir: PathBuf,
    phases: Mutex<HashMap<String, Phase>>,
}

impl Tasks for FakeTasks {
    fn log_dir(&self, task_id: &str) -> PathBuf {
        self.dir.join(task_id)
    }
    fn phase(&self, task_id: &str) -> Phase {
        *self
            .phases
            .lock()
            .unwrap()
            .get(task_id)
            .unwrap_or(&Phase::Unknown)
    }
}

impl FakeTasks {
    fn set(&self, id: &str, p: Phase) {
        self.phases.lock().unwrap().insert(id.into(), p);
        std::fs::create_dir_all(self.dir.join(id)).unwrap();
    }
    fn write(&self, id: &str, stream: &str, text: &str) {
        append(&log_path(&self.dir.join(id), stream), text);
    }
}

/// A leader that records batches; `gone` makes it refuse them.
#[derive(Clone)]
struct Recorder {
    tx: mpsc::UnboundedSender<pb::PublishLogsRequest>,
    gone: Arc<Mutex<bool>>,
}

impl Publish for Recorder {
    fn publish(&mut self, b: pb::PublishLogsRequest) -> BoxFuture<'_, Result<(), PublishError>> {
        let gone = *self.gone.lock().unwrap();
        let tx = self.tx.clone();
        Box::pin(async move {
            if gone {
                return Err(PublishError::Gone);
            }
            let _ = tx.send(b);
            Ok(())
        })
    }
}

struct Setup {
    tasks: Arc<FakeTasks>,
    book: Arc<LogBook>,
    batches: mpsc::UnboundedReceiver<pb::PublishLogsRequest>,
    recorder: Recorder,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let tasks = Arc::new(FakeTasks {
        dir: dir.path().to_path_buf(),
        ..Default::default()
    });
    let (tx, batches) = mpsc::unbounded_channel();
    Setup {
        tasks,
        book: Arc::default(),
        batches,
        recorder: Recorder {
            tx,
            gone: Arc::default(),
        },
        _dir: dir,
    }
}

impl Setup {
    fn ctx(&self) -> Ctx {
        Ctx {
            book: self.book.clone(),
            tasks: self.tasks.clone(),
            node_id: "n1".into(),
            timings: follow::Timings {
                keepalive: Duration::from_secs(3600),
                ..Default::default()
            },
        }
    }

    /// The lines of the next batches until `n` lines came (at most 10 s).
    async fn lines(&mut self, n: usize) -> Vec<String> {
        let mut got = Vec::new();
        while got.len() < n {
            let b = tokio::time::timeout(Duration::from_secs(10), self.batches.recv())
                .await
                .expect("a batch within 10 s")
                .expect("the follow is alive");
            got.extend(b.lines.iter().map(|l| {
                format!(
                    "{}/{} {}",
                    l.task_id,
                    l.stream,
                    String::from_utf8_lossy(&l.data)
                )
            }));
        }
        got
    }
}

fn request(id: &str, tasks: &[&str], follow: bool) -> pb::LogRequest {
    pb::LogRequest {
        request_id: id.into(),
        task_ids: tasks.iter().map(|s| s.to_string()).collect(),
        follow,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_plain_request_sends_history_and_is_done() {
    let mut s = setup();
    s.tasks.set("t1", Phase::Running);
    s.tasks.write("t1", "stdout", "hello\n");
    s.tasks.write("t1", "stderr", "oops\n");
    let (_tx, rx) = mpsc::unbounded_channel();
    follow::serve(
        s.ctx(),
        s.recorder.clone(),
        request("r1", &["t1"], false),
        rx,
    )
    .await;
    let b = s.batches.recv().await.unwrap();
    assert!(b.done);
    assert_eq!((b.request_id.as_str(), b.node_id.as_str()), ("r1", "n1"));
    let got: Vec<(String, String)> = b
        .lines
        .iter()
        .map(|l| {
            (
                l.stream.clone(),
                String::from_utf8_lossy(&l.data).into_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("stdout".to_string(), "hello".to_string()),
            ("stderr".to_string(), "oops".to_string())
        ]
    );
    assert!(b.lines.iter().all(|l| l.timestamp_ms > 0 && l.end > 0));
    assert_eq!(b.cursors.len(), 2, "where each stream was read to");
}

#[tokio::test]
async fn a_follow_streams_new_lines_takes_new_tasks_and_ends_when_cancelled() {
    let mut s = setup();
    s.tasks.set("t1", Phase::Running);
    s.tasks.write("t1", "stdout", "old\n");
    let (tx, rx) = mpsc::unbounded_channel();
    let first = pb::LogRequest {
        skip_history: true,
        ..request("r1", &["t1"], true)
    };
    let run = tokio::spawn(follow::serve(s.ctx(), s.recorder.clone(), first, rx));
    // First the cursors (no history was asked for).
    let hello = s.batches.recv().await.unwrap();
    assert!(hello.lines.is_empty() && !hello.done);
    assert_eq!(hello.cursors.len(), 2);
    assert_eq!(hello.cursors.iter().map(|c| c.offset).max(), Some(4));
    s.tasks.write("t1", "stdout", "new 1\nnew");
    s.book.stamp_live();
    assert_eq!(s.lines(1).await, ["t1/stdout new 1"]);
    // A task that starts later joins the follow with its whole log.
    s.tasks.set("t2", Phase::Running);
    s.tasks.write("t2", "stderr", "t2 a\n");
    tx.send(request("r1", &["t2"], true)).unwrap();
    assert_eq!(s.lines(1).await, ["t2/stderr t2 a"]);
    s.tasks.write("t1", "stdout", " 2\n");
    s.book.stamp_live();
    assert_eq!(s.lines(1).await, ["t1/stdout new 2"]);
    // t2 ends with an unfinished line: it comes, and t2 is read no more.
    s.tasks.write("t2", "stderr", "last words");
    s.tasks.set("t2", Phase::Ended);
    s.book.stamp_live();
    assert_eq!(s.lines(1).await, ["t2/stderr last words"]);
    tx.send(pb::LogRequest {
        cancel: true,
        ..request("r1", &[], true)
    })
    .unwrap();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("a cancelled follow ends")
        .unwrap();
}

#[tokio::test]
async fn a_follow_resumes_at_its_cursors_and_ends_when_nobody_reads() {
    let mut s = setup();
    s.tasks.set("t1", Phase::Running);
    s.tasks.write("t1", "stdout", "one\ntwo\nthree\n");
    let (_tx, rx) = mpsc::unbounded_channel();
    let first = pb::LogRequest {
        // --tail 1 would give "three"; the cursor wins for the stream it names.
        tail: 1,
        resume: vec![pb::LogCursor {
            task_id: "t1".into(),
            stream: "stdout".into(),
            offset: 4,
        }],
        ..request("r1", &["t1"], true)
    };
    let run = tokio::spawn(follow::serve(s.ctx(), s.recorder.clone(), first, rx));
    assert_eq!(s.lines(2).await, ["t1/stdout two", "t1/stdout three"]);
    *s.recorder.gone.lock().unwrap() = true;
    s.tasks.write("t1", "stdout", "four\n");
    s.book.stamp_live();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("a follow nobody reads ends")
        .unwrap();
}

#[tokio::test]
async fn a_follow_ends_with_its_session() {
    let s = setup();
    s.tasks.set("t1", Phase::Running);
    let (tx, rx) = mpsc::unbounded_channel();
    let run = tokio::spawn(follow::serve(
        s.ctx(),
        s.recorder.clone(),
        request("r1", &["t1"], true),
        rx,
    ));
    drop(tx);
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("ends when its requests channel closes")
        .unwrap();
}

#[tokio::test]
async fn a_big_history_comes_in_bounded_batches() {
    let mut s = setup();
    s.tasks.set("t1", Phase::Ended);
    let line = format!("{}\n", "q".repeat(999));
    s.tasks.write("t1", "stdout", &line.repeat(1000));
    let (_tx, rx) = mpsc::unbounded_channel();
    follow::serve(
        s.ctx(),
        s.recorder.clone(),
        request("r1", &["t1"], false),
        rx,
    )
    .await;
    let mut n = 0;
    let mut batches = 0;
    loop {
        let b = s.batches.recv().await.unwrap();
        let bytes: usize = b.lines.iter().map(|l| l.data.len()).sum();
        assert!(bytes <= follow::BATCH_BYTES, "{bytes}");
        n += b.lines.len();
        batches += 1;
        if b.done {
            break;
        }
    }
    assert_eq!(n, 1000);
    assert!(batches >= 4, "{batches}");
}

#[tokio::test]
async fn a_task_not_known_yet_is_waited_for_and_one_long_quiet_is_read_to_its_end() {
    let mut s = setup();
    // t-old ran here long ago (forgotten); t-new's assignment has not come yet.
    s.tasks.set("t-old", Phase::Unknown);
    s.tasks.write("t-old", "stdout", "done\nno newline");
    let mut ctx = s.ctx();
    ctx.timings.quiet = Duration::ZERO;
    let (_tx, rx) = mpsc::unbounded_channel();
    let first = request("r1", &["t-old", "t-new"], true);
    let run = tokio::spawn(follow::serve(ctx, s.recorder.clone(), first, rx));
    assert_eq!(
        s.lines(2).await,
        ["t-old/stdout done", "t-old/stdout no newline"],
        "its unfinished line too: nothing will finish it"
    );
    s.tasks.set("t-new", Phase::Running);
    s.tasks.write("t-new", "stdout", "hi\n");
    s.book.stamp_live();
    assert_eq!(s.lines(1).await, ["t-new/stdout hi"]);
    run.abort();
}
