use super::*;

fn inv(pid: u64, op: Op) -> Event {
    Event::Invoke {
        pid,
        key: "k".into(),
        op,
    }
}

fn ret(pid: u64, ret: Ret, version: u64) -> Event {
    Event::Return {
        pid,
        key: "k".into(),
        ret,
        version,
    }
}

fn cas(from: Tag, to: Tag) -> Op {
    Op::Cas {
        from,
        to,
        version: 0,
    }
}

fn read(manager: usize, version: u64) -> Op {
    Op::Read { manager, version }
}

fn run(events: &[Event]) -> Verdict {
    let initial = BTreeMap::from([("k".to_string(), Some(0))]);
    check(events, &initial)
}

#[test]
fn concurrent_updates_with_one_winner_are_linearizable() {
    let v = run(&[
        inv(1, cas(0, 10)),
        inv(2, cas(0, 20)),
        ret(2, Ret::Conflict, 0),
        ret(1, Ret::Ok, 5),
        inv(3, read(0, 5)),
        ret(3, Ret::Value(Some(10)), 0),
    ]);
    assert!(v.violations.is_empty(), "{:?}", v.violations);
    assert_eq!((v.completed, v.acked), (3, 1));
}

#[test]
fn a_lost_acknowledged_update_is_a_violation() {
    let v = run(&[
        inv(1, cas(0, 10)),
        ret(1, Ret::Ok, 5),
        inv(3, read(1, 2)),
        ret(3, Ret::Value(Some(0)), 0),
    ]);
    assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
    assert!(v.violations[0].contains("NOT LINEARIZABLE"));
}

#[test]
fn a_refused_update_that_was_applied_is_a_violation() {
    // What a manager that retried a forwarded write after it had in fact committed would
    // answer: "update out of sequence", yet the value is there.
    let v = run(&[
        inv(1, cas(0, 10)),
        ret(1, Ret::Conflict, 0),
        inv(2, read(0, 5)),
        ret(2, Ret::Value(Some(10)), 0),
    ]);
    assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
}

#[test]
fn an_unknown_update_may_or_may_not_have_been_applied() {
    for final_value in [0, 10] {
        let v = run(&[
            inv(1, cas(0, 10)),
            inv(2, read(0, 5)),
            ret(2, Ret::Value(Some(final_value)), 0),
        ]);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!(v.unknown_applied + v.unknown_dropped, 1);
        assert_eq!(v.unknown_applied, usize::from(final_value == 10));
    }
}

#[test]
fn two_creates_of_one_name_cannot_both_succeed_and_versions_must_rise() {
    let initial = BTreeMap::new();
    let evs = [
        inv(1, Op::Create { tag: 1 }),
        inv(2, Op::Create { tag: 2 }),
        ret(1, Ret::Ok, 0),
        ret(2, Ret::Ok, 0),
    ];
    let v = check(&evs, &initial);
    assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
    let v = run(&[
        inv(1, cas(0, 10)),
        ret(1, Ret::Ok, 7),
        inv(
            2,
            Op::Cas {
                from: 10,
                to: 11,
                version: 0,
            },
        ),
        Event::Return {
            pid: 2,
            key: "k".into(),
            ret: Ret::Ok,
            version: 0,
        },
    ]);
    assert!(v.violations.is_empty());
    let order = [
        (
            Op::Cas {
                from: 0,
                to: 1,
                version: 9,
            },
            Ret::Ok,
        ),
        (
            Op::Cas {
                from: 1,
                to: 2,
                version: 8,
            },
            Ret::Ok,
        ),
    ];
    assert!(versions_rise(&order, None).is_err());
}

#[test]
fn a_read_of_a_value_nobody_wrote_is_a_phantom() {
    let v = run(&[inv(3, read(0, 1)), ret(3, Ret::Value(Some(99)), 0)]);
    assert!(v.violations.iter().any(|x| x.contains("nothing wrote")));
}

#[test]
fn a_long_history_is_cut_into_pieces_and_checked_quickly() {
    // 4 processes, 3000 rounds: in each, one update wins and three are refused.
    let mut evs = Vec::new();
    let mut value = 0;
    let mut pid = 10;
    for round in 0..3000u64 {
        let next = 1000 + round;
        for p in 0..4 {
            evs.push(inv(pid + p, cas(value, next * 10 + p)));
        }
        evs.push(ret(pid, Ret::Ok, round + 1));
        for p in 1..4 {
            evs.push(ret(pid + p, Ret::Conflict, 0));
        }
        value = next * 10;
        pid += 4;
    }
    evs.push(inv(1, read(0, 3000)));
    evs.push(ret(1, Ret::Value(Some(value)), 0));
    let v = run(&evs);
    assert!(v.violations.is_empty(), "{:?}", v.violations);
    assert_eq!(v.pieces, 3001);
    assert_eq!(v.acked, 3000);
}

#[test]
fn a_seen_unknown_update_counts_as_applied_before_its_observer() {
    // p1's update is unknown; p2 read its value and updated from it; a final read agrees.
    let v = run(&[
        inv(1, cas(0, 10)),
        inv(2, cas(10, 20)),
        ret(2, Ret::Ok, 9),
        inv(3, read(0, 9)),
        ret(3, Ret::Value(Some(20)), 0),
    ]);
    assert!(v.violations.is_empty(), "{:?}", v.violations);
    assert_eq!((v.unknown_applied, v.acked), (1, 2));
}
