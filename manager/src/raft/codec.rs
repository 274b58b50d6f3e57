//! The encoding of raft log entries and raft RPC payloads: MessagePack behind a tag byte.
//!
//! `[TAG][MessagePack]`, structs encoded as maps with their field names (rmp-serde's
//! `with_struct_map`), so the format is self-describing like the JSON it replaces: fields
//! skipped with `skip_serializing_if`, fields added with `#[serde(default)]` and the
//! hand-written tuple encodings of `shoal_proto::model::Command` decode exactly as they do from
//! JSON. Positional formats (bincode, postcard) would misread a struct with a skipped field.
//!
//! Older Shoal wrote and sent JSON, which starts with `{`, `[`, `"` or whitespace, never
//! [`TAG`]: [`decode`] reads both, so old logs still open and old peers' messages are still
//! understood.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The first byte of a MessagePack record. It never starts JSON (a control character), nor a
/// sealed record (`0xFF`, see [`super::storage::crypt`]), nor a plaintext snapshot (`0x00`).
pub const TAG: u8 = 0x01;

/// Encoding or decoding a raft record failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The value could not be encoded.
    #[error("encoding a raft record: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// A MessagePack record did not decode.
    #[error("decoding a raft record (MessagePack): {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    /// A JSON record (written by an older Shoal) did not decode.
    #[error("decoding a raft record (JSON): {0}")]
    Json(#[from] serde_json::Error),
}

/// `v` as `[TAG][MessagePack]`.
pub fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(128);
    out.push(TAG);
    let mut ser = rmp_serde::Serializer::new(&mut out).with_struct_map();
    v.serialize(&mut ser)?;
    Ok(out)
}

/// The length of [`encode`]`(v)`, without building it.
pub fn encoded_len<T: Serialize + ?Sized>(v: &T) -> Result<usize, CodecError> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(1);
    let mut ser = rmp_serde::Serializer::new(&mut count).with_struct_map();
    v.serialize(&mut ser)?;
    Ok(count.0)
}

/// Whether `bytes` is in the binary form (else JSON).
pub fn is_binary(bytes: &[u8]) -> bool {
    bytes.first() == Some(&TAG)
}

/// Decodes a record made by [`encode`], or a JSON one.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        Some((&TAG, rest)) => Ok(rmp_serde::from_slice(rest)?),
        _ => Ok(serde_json::from_slice(bytes)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::TypeConfig;
    use openraft::{Entry, EntryPayload, LogId, Membership};
    use shoal_proto::model::Command;
    use std::collections::{BTreeMap, BTreeSet};

    fn entries() -> Vec<Entry<TypeConfig>> {
        let id = |i| LogId::new(openraft::CommittedLeaderId::new(3, 7), i);
        let nodes: BTreeMap<u64, openraft::BasicNode> =
            [(7, openraft::BasicNode::new("10.0.0.1:4242"))].into();
        let members: BTreeSet<u64> = [7].into();
        let cmd: Command =
            serde_json::from_str(r#"{"Batch":[{"SetNodeLbAddrs":[["n1","net1","10.1.0.2/24"]]}]}"#)
                .unwrap();
        vec![
            Entry {
                log_id: id(1),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: id(2),
                payload: EntryPayload::Membership(Membership::new(vec![members], nodes)),
            },
            Entry {
                log_id: id(3),
                payload: EntryPayload::Normal(cmd),
            },
        ]
    }

    #[test]
    fn binary_round_trips_and_is_smaller_than_json() {
        for e in entries() {
            let bin = encode(&e).unwrap();
            assert!(is_binary(&bin));
            assert_eq!(encoded_len(&e).unwrap(), bin.len());
            let json = serde_json::to_vec(&e).unwrap();
            assert!(bin.len() < json.len(), "{} >= {}", bin.len(), json.len());
            let back: Entry<TypeConfig> = decode(&bin).unwrap();
            assert_eq!(
                serde_json::to_value(&back).unwrap(),
                serde_json::to_value(&e).unwrap()
            );
        }
    }

    #[test]
    fn json_written_by_older_shoal_still_decodes() {
        for e in entries() {
            let json = serde_json::to_vec(&e).unwrap();
            assert!(!is_binary(&json));
            let back: Entry<TypeConfig> = decode(&json).unwrap();
            assert_eq!(
                serde_json::to_value(&back).unwrap(),
                serde_json::to_value(&e).unwrap()
            );
        }
    }

    #[test]
    fn raft_messages_round_trip() {
        use openraft::error::RaftError;
        use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest};
        use openraft::Vote;
        let req = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 7),
            prev_log_id: None,
            entries: entries(),
            leader_commit: Some(LogId::new(openraft::CommittedLeaderId::new(3, 7), 2)),
        };
        let back: AppendEntriesRequest<TypeConfig> = decode(&encode(&req).unwrap()).unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&req).unwrap()
        );
        let vote = VoteRequest::new(Vote::new(4, 9), None);
        let back: VoteRequest<u64> = decode(&encode(&vote).unwrap()).unwrap();
        assert_eq!(back, vote);
        type Reply = Result<AppendEntriesResponse<u64>, RaftError<u64>>;
        for r in [
            Ok(AppendEntriesResponse::Success),
            Ok(AppendEntriesResponse::HigherVote(Vote::new(5, 1))),
            Err(RaftError::Fatal(openraft::error::Fatal::Stopped)),
        ] {
            let r: Reply = r;
            let back: Reply = decode(&encode(&r).unwrap()).unwrap();
            assert_eq!(back, r);
        }
    }
}
