//! Checking a history: linearizability with `stateright`'s [`LinearizabilityTester`] against
//! a sequential specification of one key, key by key (linearizability is local: a history is
//! linearizable exactly when its projection on every object is, Herlihy & Wing 1990, §3.3).
//!
//! The specification of a key ([`Key`]): the service exists or not and has a label value.
//! `Create` succeeds when it does not exist, else `Exists`; `Cas(from → to)` succeeds when the
//! value is `from`, else `Conflict` (a version the client read names exactly one value, since
//! every successful update writes a value never written before and bumps the version to its
//! raft index); the final reads return the value.
//!
//! Two exact reductions keep stateright's search (a depth-first search over interleavings,
//! without memoisation) small:
//! * **Unknown writes are resolved.** Values are unique, and every update names the value it
//!   read, so an unknown write whose value nobody ever saw was not applied (or an update would
//!   have named it, or a final read shown it): it is dropped. One whose value was seen was
//!   applied, after its invocation and before the first operation that saw it: it becomes an
//!   acknowledged write returning just before that operation (a sound, wider interval).
//! * **Quiescent cuts.** With every operation complete, wherever no operation on the key is open
//!   the history is cut; the acknowledged writes of a piece form one chain (each names the
//!   value the previous wrote), so the state after a piece is the same in every linearization
//!   of it, and the pieces are checked one after another from it.

use super::history::{render, Event, Op, Ret, Tag};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// The sequential specification of one key: `None` while the service does not exist, else its
/// label value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Key(pub Option<Tag>);

impl SequentialSpec for Key {
    type Op = Op;
    type Ret = Ret;

    fn invoke(&mut self, op: &Op) -> Ret {
        match *op {
            Op::Create { tag } => {
                if self.0.is_some() {
                    Ret::Exists
                } else {
                    self.0 = Some(tag);
                    Ret::Ok
                }
            }
            Op::Cas { from, to, .. } => {
                if self.0 == Some(from) {
                    self.0 = Some(to);
                    Ret::Ok
                } else {
                    Ret::Conflict
                }
            }
            Op::Read { .. } => Ret::Value(self.0),
        }
    }
}

/// What checking found.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Keys checked.
    pub keys: usize,
    /// Operations with a return fed to the checker (including the final reads).
    pub completed: usize,
    /// Unknown writes whose value was seen later: applied, checked as acknowledged.
    pub unknown_applied: usize,
    /// Unknown writes nobody ever saw: not applied, dropped.
    pub unknown_dropped: usize,
    /// Acknowledged writes checked (creates and updates that returned ok).
    pub acked: usize,
    /// Pieces the histories were cut into.
    pub pieces: usize,
    /// One entry per problem: the key, what is wrong and an excerpt of its history.
    pub violations: Vec<String>,
}

/// How long one piece's search may take before it is reported undecided.
pub const PIECE_CHECK_LIMIT: Duration = Duration::from_secs(60);

/// Checks `events` (every key's history, in real-time order, the final reads last) against
/// [`Key`], each key starting from `initial` (absent keys start not existing).
pub fn check(events: &[Event], initial: &BTreeMap<String, Option<Tag>>) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<Event>> = BTreeMap::new();
    for e in events {
        let key = match e {
            Event::Invoke { key, .. } | Event::Return { key, .. } => key.as_str(),
        };
        by_key.entry(key).or_default().push(e.clone());
    }
    let mut v = Verdict::default();
    for (key, evs) in by_key {
        v.keys += 1;
        let start = initial.get(key).copied().flatten();
        if let Some(problem) = phantom(key, &evs, start) {
            v.violations.push(problem);
        }
        let evs = with_versions(&resolve(evs, &mut v));
        for e in &evs {
            if let Event::Return { ret, .. } = e {
                v.completed += 1;
                if *ret == Ret::Ok {
                    v.acked += 1;
                }
            }
        }
        if let Err(why) = check_key(&evs, start, &mut v.pieces) {
            v.violations.push(format!("key {key}: {why}"));
        }
    }
    v
}

/// The value an operation writes.
fn written(op: &Op) -> Option<Tag> {
    match op {
        Op::Create { tag } => Some(*tag),
        Op::Cas { to, .. } => Some(*to),
        Op::Read { .. } => None,
    }
}

/// Whether event `e` shows that value `t` had been written before it.
fn observes(e: &Event, t: Tag) -> bool {
    match e {
        Event::Invoke {
            op: Op::Cas { from, .. },
            ..
        } => *from == t,
        Event::Return {
            ret: Ret::Value(Some(v)),
            ..
        } => *v == t,
        _ => false,
    }
}

/// Every operation complete: unknown writes dropped (never seen) or returned ok just before
/// the first event that saw their value.
fn resolve(evs: Vec<Event>, v: &mut Verdict) -> Vec<Event> {
    // A process's unknown op is its last one (it takes a new id after it).
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, e) in evs.iter().enumerate() {
        match e {
            Event::Invoke { pid, .. } => {
                open.insert(*pid, i);
            }
            Event::Return { pid, .. } => {
                open.remove(pid);
            }
        }
    }
    let mut dropped = HashSet::new();
    let mut returns_before: BTreeMap<usize, Vec<Event>> = BTreeMap::new();
    for (pid, i) in open {
        let Event::Invoke { key, op, .. } = &evs[i] else {
            continue;
        };
        let seen_at = written(op).and_then(|t| {
            evs.iter()
                .enumerate()
                .skip(i + 1)
                .find(|(_, e)| observes(e, t))
                .map(|(j, _)| j)
        });
        match seen_at {
            Some(j) => {
                v.unknown_applied += 1;
                returns_before.entry(j).or_default().push(Event::Return {
                    pid,
                    key: key.clone(),
                    ret: Ret::Ok,
                    version: 0,
                });
            }
            None => {
                v.unknown_dropped += 1;
                dropped.insert(i);
            }
        }
    }
    let mut out = Vec::with_capacity(evs.len());
    for (i, e) in evs.into_iter().enumerate() {
        if let Some(rets) = returns_before.remove(&i) {
            out.extend(rets);
        }
        if !dropped.contains(&i) {
            out.push(e);
        }
    }
    out
}

/// A read of a value no operation on the key ever wrote.
fn phantom(key: &str, evs: &[Event], start: Option<Tag>) -> Option<String> {
    let writes: HashSet<Tag> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Invoke { op, .. } => written(op),
            _ => None,
        })
        .chain(start)
        .collect();
    evs.iter().find_map(|e| match e {
        Event::Return {
            ret: Ret::Value(Some(t)),
            pid,
            ..
        } if !writes.contains(t) => Some(format!(
            "key {key}: process p{pid} read the value {t}, which nothing wrote"
        )),
        _ => None,
    })
}

/// Checks one key's complete history piece by piece (cut where no operation is open).
fn check_key(evs: &[Event], start: Option<Tag>, pieces: &mut usize) -> Result<(), String> {
    let mut state = Key(start);
    let mut last_version: Option<u64> = None;
    let mut open = 0usize;
    let mut from = 0;
    for (i, e) in evs.iter().enumerate() {
        match e {
            Event::Invoke { .. } => open += 1,
            Event::Return { .. } => open = open.saturating_sub(1),
        }
        if open == 0 {
            *pieces += 1;
            let piece = &evs[from..=i];
            let order = check_piece(piece, &state).map_err(|why| {
                let before = &evs[from.saturating_sub(20)..from];
                format!(
                    "{why}\nthe piece (events {from}..={i}), after the 20 events before it:\n{}---\n{}",
                    render(before),
                    render(piece)
                )
            })?;
            last_version = versions_rise(&order, last_version)?;
            for (op, _) in &order {
                state.invoke(op);
            }
            from = i + 1;
        }
    }
    Ok(())
}

/// Runs the tester on one piece from `state`, on a thread of its own (a deep search needs a
/// deep stack) bounded by [`PIECE_CHECK_LIMIT`]; the order it found.
fn check_piece(piece: &[Event], state: &Key) -> Result<Vec<(Op, Ret)>, String> {
    let mut t = LinearizabilityTester::<u64, Key>::new(state.clone());
    for e in piece {
        let r = match e {
            Event::Invoke { pid, op, .. } => t.on_invoke(*pid, op.clone()).map(|_| ()),
            Event::Return { pid, ret, .. } => t.on_return(*pid, ret.clone()).map(|_| ()),
        };
        r.map_err(|e| format!("the history is malformed: {e}"))?;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("linearizability".into())
        .stack_size(256 << 20)
        .spawn(move || {
            let _ = tx.send(t.serialized_history());
        })
        .map_err(|e| format!("could not start the checker: {e}"))?;
    match rx.recv_timeout(PIECE_CHECK_LIMIT) {
        Ok(Some(order)) => Ok(order),
        Ok(None) => Err(format!(
            "NOT LINEARIZABLE: no order of the operations explains the returns (starting from {state:?})"
        )),
        Err(_) => Err(format!(
            "undecided: the checker found no answer within {PIECE_CHECK_LIMIT:?}"
        )),
    }
}

/// The events with each acknowledged update's version (known from its return) copied into its
/// invocation, where the order the checker finds carries it.
fn with_versions(evs: &[Event]) -> Vec<Event> {
    let mut out: Vec<Event> = evs.to_vec();
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    for i in 0..out.len() {
        match &out[i] {
            Event::Invoke { pid, .. } => {
                open.insert(*pid, i);
            }
            Event::Return { pid, version, .. } => {
                let version = *version;
                if let Some(j) = open.remove(pid) {
                    if let Event::Invoke {
                        op: Op::Cas { version: v, .. },
                        ..
                    } = &mut out[j]
                    {
                        *v = version;
                    }
                }
            }
        }
    }
    out
}

/// In the order found, acknowledged updates' versions rise, and each final read shows the
/// version of the last acknowledged write before it (when that write's version is known).
/// Returns the last known version.
fn versions_rise(order: &[(Op, Ret)], mut last: Option<u64>) -> Result<Option<u64>, String> {
    for (op, ret) in order {
        match (op, ret) {
            (Op::Cas { version, .. }, Ret::Ok) if *version > 0 => {
                if last.is_some_and(|l| *version <= l) {
                    return Err(format!(
                        "an acknowledged update got version {version}, not above the previous {last:?}"
                    ));
                }
                last = Some(*version);
            }
            // A resolved unknown update, or a create: the version is not known.
            (Op::Cas { .. } | Op::Create { .. }, Ret::Ok) => last = None,
            (Op::Read { manager, version }, Ret::Value(Some(_))) => {
                if let Some(l) = last {
                    if *version != l {
                        return Err(format!(
                            "manager{} shows version {version} where the last acknowledged update made {l}",
                            manager + 1
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests;
