//! The fast path of the embedded DNS: answers to the cluster's own names, encoded once per
//! (name, type) by the slow path (hickory) and kept per task until the tables change; a query
//! gets a copy of those bytes with only its id, its RD/CD flags and the case of its question
//! patched in (and, for `tasks.X` and dnsrr names, the addresses shuffled). Nothing is
//! allocated per query on a hit.
//!
//! Only plain queries take it: one question of class IN, no other records (no EDNS), opcode
//! QUERY, no compression in the question and nothing after it. Everything else, and every name
//! that is not the cluster's, goes to the slow path.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::RwLock;

/// Longest wire name plus the query type: the cache key.
const KEY_MAX: usize = 255 + 2;
/// Entries per task before the cache starts over (queries for random names cannot grow it).
pub const CACHE_MAX: usize = 4096;
/// Size of the DNS header.
const HEADER: usize = 12;

/// A query the fast path can take: where its question ends and its lookup key.
#[derive(Debug)]
pub struct Plain {
    /// Length of the wire name (with its final zero byte).
    pub qname_len: usize,
    /// The query type.
    pub qtype: u16,
    key: [u8; KEY_MAX],
    key_len: usize,
}

impl Plain {
    /// Lowercase wire name followed by the query type.
    pub fn key(&self) -> &[u8] {
        &self.key[..self.key_len]
    }

    /// The lowercase wire name.
    pub fn lower_qname(&self) -> &[u8] {
        &self.key[..self.qname_len]
    }
}

/// `msg` as a plain query, or `None` (slow path).
pub fn parse(msg: &[u8]) -> Option<Plain> {
    if msg.len() < HEADER + 5 {
        return None;
    }
    // QR = 0, opcode QUERY (0), no TC; one question and nothing else.
    if msg[2] & 0xfa != 0 || msg[4..12] != [0, 1, 0, 0, 0, 0, 0, 0] {
        return None;
    }
    let mut key = [0u8; KEY_MAX];
    let mut off = HEADER;
    loop {
        let len = *msg.get(off)? as usize;
        if len > 63 {
            return None; // compression or an extended label type
        }
        if off + 1 + len - HEADER > 255 {
            return None;
        }
        let label = msg.get(off..off + 1 + len)?;
        for (i, b) in label.iter().enumerate() {
            key[off - HEADER + i] = if i == 0 { *b } else { b.to_ascii_lowercase() };
        }
        off += 1 + len;
        if len == 0 {
            break;
        }
    }
    let qname_len = off - HEADER;
    let rest = msg.get(off..)?;
    // Type, class IN, and the datagram ends there.
    if rest.len() != 4 || rest[2..4] != [0, 1] {
        return None;
    }
    let qtype = u16::from_be_bytes([rest[0], rest[1]]);
    key[qname_len..qname_len + 2].copy_from_slice(&rest[..2]);
    Some(Plain {
        qname_len,
        qtype,
        key,
        key_len: qname_len + 2,
    })
}

/// A query with id 0, no flags, the question `qname_wire` `qtype` IN: what an entry is
/// encoded from.
pub fn canonical_query(qname_wire: &[u8], qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(HEADER + qname_wire.len() + 4);
    q.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(qname_wire);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

/// One cached reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The slow path's answer to the canonical query.
    Local {
        /// The wire bytes (id 0, RD and CD clear, the lowercase question).
        wire: Box<[u8]>,
        /// Offsets of the addresses of the A records shuffled per answer (`tasks.X`, dnsrr
        /// names); empty: fixed order.
        shuffle: Box<[u16]>,
    },
    /// Not answered locally (forwarded, or not cacheable): the slow path.
    Slow,
}

impl Entry {
    /// The entry for `wire`, the slow path's reply to the canonical query of a name whose
    /// answer is `shuffled` (or not). A shuffled answer that is not a plain list of A records
    /// of one name (truncated, say) is left to the slow path.
    pub fn local(wire: Vec<u8>, qname_len: usize, shuffled: bool) -> Entry {
        if wire.len() < HEADER + qname_len + 4 {
            return Entry::Slow;
        }
        let shuffle = if shuffled {
            match a_addresses(&wire, qname_len) {
                Some(offsets) => offsets,
                None => return Entry::Slow,
            }
        } else {
            Vec::new()
        };
        Entry::Local {
            wire: wire.into_boxed_slice(),
            shuffle: shuffle.into_boxed_slice(),
        }
    }
}

/// Where the addresses of the answer section are, when it is made only of A records (IN, same
/// TTL) and nothing follows: their offsets.
fn a_addresses(wire: &[u8], qname_len: usize) -> Option<Vec<u16>> {
    let flags = u16::from_be_bytes([wire[2], wire[3]]);
    if flags & 0x0200 != 0 || wire[8..12] != [0, 0, 0, 0] {
        return None; // truncated, or authority/additional records
    }
    let n = u16::from_be_bytes([wire[6], wire[7]]) as usize;
    let mut off = HEADER + qname_len + 4;
    let mut offsets = Vec::with_capacity(n);
    let mut ttl = None;
    for _ in 0..n {
        // The owner name: labels, ending with a zero byte or a pointer.
        loop {
            let len = *wire.get(off)? as usize;
            if len & 0xc0 == 0xc0 {
                off += 2;
                break;
            }
            if len > 63 {
                return None;
            }
            off += 1 + len;
            if len == 0 {
                break;
            }
        }
        let fixed = wire.get(off..off + 10)?;
        if fixed[..4] != [0, 1, 0, 1] || fixed[8..10] != [0, 4] {
            return None;
        }
        if *ttl.get_or_insert(&fixed[4..8]) != &fixed[4..8] {
            return None;
        }
        offsets.push(u16::try_from(off + 10).ok()?);
        off += 14;
    }
    (off == wire.len()).then_some(offsets)
}

/// Writes into `out` the reply to `query` (a [`parse`]d plain query) from `wire`: the cached
/// bytes with the query's id, RD and CD flags and question name (its case) patched in, and
/// the addresses at `shuffle` in a random order.
pub fn patch_into(out: &mut Vec<u8>, wire: &[u8], shuffle: &[u16], query: &[u8], plain: &Plain) {
    out.clear();
    out.extend_from_slice(wire);
    out[0] = query[0];
    out[1] = query[1];
    out[2] |= query[2] & 0x01; // RD
    out[3] |= query[3] & 0x10; // CD
    out[HEADER..HEADER + plain.qname_len].copy_from_slice(&query[HEADER..HEADER + plain.qname_len]);
    // Fisher-Yates over the addresses, in place.
    for i in (1..shuffle.len()).rev() {
        let j = rand::random_range(0..=i);
        if i != j {
            let (a, b) = (usize::from(shuffle[j]), usize::from(shuffle[i]));
            for k in 0..4 {
                out.swap(a + k, b + k);
            }
        }
    }
}

/// A key that can be looked up by a borrowed slice.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key(Box<[u8]>);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

#[derive(Debug, Default)]
struct Inner {
    version: u64,
    map: HashMap<Key, Entry>,
}

/// One task's answers, valid for one version of the tables.
#[derive(Debug, Default)]
pub struct Cache {
    inner: RwLock<Inner>,
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// A cached answer: written into the output buffer.
    Hit,
    /// Known to take the slow path.
    Slow,
    /// Not cached for this version.
    Miss,
}

impl Cache {
    /// Looks `plain` up for tables `version`; on a local entry, writes the reply to `query`
    /// into `out`.
    pub fn answer_into(
        &self,
        version: u64,
        query: &[u8],
        plain: &Plain,
        out: &mut Vec<u8>,
    ) -> Found {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        if inner.version != version {
            return Found::Miss;
        }
        match inner.map.get(plain.key()) {
            Some(Entry::Local { wire, shuffle }) => {
                patch_into(out, wire, shuffle, query, plain);
                Found::Hit
            }
            Some(Entry::Slow) => Found::Slow,
            None => Found::Miss,
        }
    }

    /// Keeps `entry` for `key` under tables `version` (older entries are dropped first).
    pub fn insert(&self, version: u64, key: &[u8], entry: Entry) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if inner.version != version {
            if inner.version > version {
                return; // built from older tables than the cache already holds
            }
            inner.map.clear();
            inner.version = version;
        }
        if inner.map.len() >= CACHE_MAX {
            inner.map.clear();
        }
        inner.map.insert(Key(key.into()), entry);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }

    /// No entry held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
