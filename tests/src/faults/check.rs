//! Checking a history: linearizability with `stateright`'s [`LinearizabilityTester`] against
//! a sequential specification of one key, key by key (linearizability is local: a history is
//! linearizable exactly when its projection on every object is, Herlihy & Wing 1990, §3.3).
//!
//! The specification of a key ([`Key`]): the service exists or not and has a label value.
//! `Create` succeeds when it does not exist, else `Exists`; `Cas(from → to)` succeeds when the
//! value is `from`, else `Conflict` (a version the client read names exactly one value, since
//! every successful update writes a value never written before and bumps the version to its
//! raft index); the final reads return the value.

use super::history::{render, Event, Op, Ret, Tag};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use std::collections::{BTreeMap, BTreeSet, HashSet};
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
    /// Unknown writes left in flight (possibly applied).
    pub in_flight: usize,
    /// Unknown writes dropped because no read ever saw their value (so they were not applied,
    /// or were invisible until overwritten, which no update could do: an update names the value
    /// it read).
    pub unobserved_unknown: usize,
    /// Acknowledged writes checked.
    pub acked: usize,
    /// One entry per problem: the key, what is wrong and an excerpt of its history.
    pub violations: Vec<String>,
}

/// How long one key's search may take before the key is reported undecided.
pub const KEY_CHECK_LIMIT: Duration = Duration::from_secs(120);

/// Checks `events` (every key's history, in real-time order, the final reads last) against
/// [`Key`], each key starting from `initial` (absent keys start not existing). `observed` are
/// the values mid-run reads saw.
pub fn check(
    events: &[Event],
    initial: &BTreeMap<String, Option<Tag>>,
    observed: &BTreeMap<String, BTreeSet<Tag>>,
) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in events {
        let key = match e {
            Event::Invoke { key, .. } | Event::Return { key, .. } => key.as_str(),
        };
        by_key.entry(key).or_default().push(e);
    }
    let mut v = Verdict::default();
    for (key, evs) in by_key {
        v.keys += 1;
        let start = initial.get(key).copied().flatten();
        let seen = seen_values(&evs, start, observed.get(key));
        let projected = prune(&evs, &seen, &mut v);
        if let Some(problem) = phantom(key, &evs, start) {
            v.violations.push(problem);
        }
        match check_key(key, &projected, start) {
            Ok(()) => {}
            Err(why) => {
                let excerpt: Vec<Event> = projected.iter().map(|e| (*e).clone()).collect();
                let tail = &excerpt[excerpt.len().saturating_sub(60)..];
                v.violations.push(format!(
                    "key {key}: {why}\nlast events of {key}:\n{}",
                    render(tail)
                ));
            }
        }
    }
    v
}

/// Every value some read returned, or an update named as the one it read.
fn seen_values(evs: &[&Event], start: Option<Tag>, mid: Option<&BTreeSet<Tag>>) -> HashSet<Tag> {
    let mut seen: HashSet<Tag> = mid.into_iter().flatten().copied().collect();
    seen.extend(start);
    for e in evs {
        match e {
            Event::Invoke {
                op: Op::Cas { from, .. },
                ..
            } => {
                seen.insert(*from);
            }
            Event::Return {
                ret: Ret::Value(Some(t)),
                ..
            } => {
                seen.insert(*t);
            }
            _ => {}
        }
    }
    seen
}

/// The key's events without the unknown writes nobody ever saw; counts what is kept.
fn prune<'a>(evs: &[&'a Event], seen: &HashSet<Tag>, v: &mut Verdict) -> Vec<&'a Event> {
    // A process's unknown op is its last one (it takes a new id after it): the invocations
    // left open.
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
    let mut drop_at = HashSet::new();
    for (_, i) in open {
        if let Event::Invoke { op, .. } = evs[i] {
            let tag = match op {
                Op::Create { tag } => Some(*tag),
                Op::Cas { to, .. } => Some(*to),
                Op::Read { .. } => None,
            };
            match tag {
                Some(t) if !seen.contains(&t) => {
                    v.unobserved_unknown += 1;
                    drop_at.insert(i);
                }
                _ => v.in_flight += 1,
            }
        }
    }
    let mut out = Vec::with_capacity(evs.len());
    for (i, e) in evs.iter().enumerate() {
        if drop_at.contains(&i) {
            continue;
        }
        if let Event::Return { ret, .. } = e {
            v.completed += 1;
            if *ret == Ret::Ok {
                v.acked += 1;
            }
        }
        out.push(*e);
    }
    out
}

/// A read of a value no operation on the key ever wrote.
fn phantom(key: &str, evs: &[&Event], start: Option<Tag>) -> Option<String> {
    let written: HashSet<Tag> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Invoke {
                op: Op::Create { tag },
                ..
            }
            | Event::Invoke {
                op: Op::Cas { to: tag, .. },
                ..
            } => Some(*tag),
            _ => None,
        })
        .chain(start)
        .collect();
    evs.iter().find_map(|e| match e {
        Event::Return {
            ret: Ret::Value(Some(t)),
            pid,
            ..
        } if !written.contains(t) => Some(format!(
            "key {key}: process p{pid} read the value {t}, which nothing wrote"
        )),
        _ => None,
    })
}

/// Runs the tester on one key's events, on a thread of its own (a deep search needs a deep
/// stack) bounded by [`KEY_CHECK_LIMIT`].
fn check_key(key: &str, evs: &[&Event], start: Option<Tag>) -> Result<(), String> {
    let mut t = LinearizabilityTester::<u64, Key>::new(Key(start));
    for e in &with_versions(evs) {
        let r = match e {
            Event::Invoke { pid, op, .. } => t.on_invoke(*pid, op.clone()).map(|_| ()),
            Event::Return { pid, ret, .. } => t.on_return(*pid, ret.clone()).map(|_| ()),
        };
        r.map_err(|e| format!("the history is malformed: {e}"))?;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("check-{key}"))
        .stack_size(512 << 20)
        .spawn(move || {
            let _ = tx.send(t.serialized_history());
        });
    if let Err(e) = spawned {
        return Err(format!("could not start the checker: {e}"));
    }
    match rx.recv_timeout(KEY_CHECK_LIMIT) {
        Ok(Some(order)) => versions_rise(&order),
        Ok(None) => Err("NOT LINEARIZABLE: no order of the operations explains the returns".into()),
        Err(_) => Err(format!(
            "undecided: the checker found no answer within {KEY_CHECK_LIMIT:?}"
        )),
    }
}

/// The events with each acknowledged update's version (known from its return) copied into its
/// invocation, where the order the checker finds carries it.
fn with_versions(evs: &[&Event]) -> Vec<Event> {
    let mut out: Vec<Event> = evs.iter().map(|e| (*e).clone()).collect();
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
fn versions_rise(order: &[(Op, Ret)]) -> Result<(), String> {
    let mut last: Option<u64> = None;
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
            // An update left in flight, or a create: the version is not known.
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
    Ok(())
}

#[cfg(test)]
mod tests;
