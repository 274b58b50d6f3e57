use super::*;
use crate::ManagerConfig;
use std::sync::Arc;

fn dispatcher() -> Arc<Dispatcher> {
    let mut cfg = ManagerConfig::new("n".into(), 1, "127.0.0.1:1".into(), "/x".into());
    cfg.relay_timeout = Duration::from_secs(5);
    Arc::new(Dispatcher::new(&cfg))
}

fn chunks(parts: &[&[u8]]) -> ChunkStream {
    let v: Vec<Result<pb::ImageLoadChunk, Status>> = parts
        .iter()
        .map(|p| {
            Ok(pb::ImageLoadChunk {
                node: String::new(),
                data: p.to_vec(),
            })
        })
        .collect();
    Box::pin(tokio_stream::iter(v))
}

fn load_op(max_bytes: u64) -> pb::ImageOp {
    pb::ImageOp {
        kind: pb::ImageOpKind::ImageOpLoad as i32,
        max_bytes,
        ..Default::default()
    }
}

/// A fake agent for node `node`: answers every list with one image; takes every load's
/// upload, reads it to its end (or error) and answers with what it read.
fn fake_agent(d: Arc<Dispatcher>, node: &'static str) -> tokio::task::JoinHandle<()> {
    let (tx, mut to_agent) = mpsc::channel(4);
    d.open_session(node, tx);
    tokio::spawn(async move {
        while let Some(req) = to_agent.recv().await {
            let ToAgent::Image(op) = req else { continue };
            let d = d.clone();
            tokio::spawn(async move {
                let mut rep = pb::ImageNodeReport {
                    request_id: op.request_id.clone(),
                    node_id: node.into(),
                    ..Default::default()
                };
                if op.kind == pb::ImageOpKind::ImageOpLoad as i32 {
                    let (leg, mut rx) = mpsc::channel(UPLOAD_CHUNKS);
                    d.image_upload(&op.request_id, node, leg).unwrap();
                    let mut got = Vec::new();
                    while let Some(c) = rx.recv().await {
                        match c {
                            Ok(c) => got.extend(c.data),
                            Err(s) => {
                                rep.error = format!("upload failed: {}", s.message());
                                break;
                            }
                        }
                    }
                    rep.images.push(pb::ImageSummary {
                        references: vec![String::from_utf8_lossy(&got).into_owned()],
                        ..Default::default()
                    });
                } else {
                    rep.images.push(pb::ImageSummary {
                        id: "sha256:1".into(),
                        ..Default::default()
                    });
                }
                d.deliver(FromAgent::Image(rep));
            });
        }
    })
}

#[tokio::test]
async fn an_image_op_reaches_the_node_and_its_answer_comes_back() {
    let d = dispatcher();
    let agent = fake_agent(d.clone(), "n1");
    let op = pb::ImageOp::default();
    let got = d.image_op("n1", op, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.node_id, "n1");
    assert_eq!(got.images[0].id, "sha256:1");
    assert_eq!(d.relay.in_flight(), 0);
    agent.abort();
}

#[tokio::test]
async fn a_load_streams_every_chunk_to_the_node_that_was_asked() {
    let d = dispatcher();
    let agent = fake_agent(d.clone(), "n1");
    let got = d
        .image_load(
            "n1",
            load_op(100),
            chunks(&[b"hello ", b"image ", b"archive"]),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(got.error, "");
    assert_eq!(got.images[0].references, vec!["hello image archive"]);
    assert_eq!(d.uploads.waiting(), 0);
    assert_eq!(d.relay.in_flight(), 0);
    agent.abort();
}

#[tokio::test]
async fn a_load_past_the_limit_is_refused_and_the_node_told() {
    let d = dispatcher();
    let agent = fake_agent(d.clone(), "n1");
    let got = d
        .image_load(
            "n1",
            load_op(10),
            chunks(&[b"12345", b"67890", b"x"]),
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(got, Err(LoadError::TooLarge { max: 10 }));
    assert_eq!(
        got.unwrap_err().to_string(),
        "the archive is larger than 10 bytes (the managers' image load limit); nothing was loaded"
    );
    agent.abort();
}

#[tokio::test]
async fn a_broken_client_stream_fails_the_load() {
    let d = dispatcher();
    let agent = fake_agent(d.clone(), "n1");
    let broken: ChunkStream = Box::pin(tokio_stream::iter(vec![
        Ok(pb::ImageLoadChunk {
            node: String::new(),
            data: b"abc".to_vec(),
        }),
        Err(Status::cancelled("client went away")),
    ]));
    let got = d
        .image_load("n1", load_op(100), broken, Duration::from_secs(5))
        .await;
    assert_eq!(got, Err(LoadError::Client("client went away".into())));
    agent.abort();
}

#[tokio::test]
async fn only_the_node_asked_takes_the_upload() {
    let d = dispatcher();
    let (tx, mut to_agent) = mpsc::channel(4);
    d.open_session("n1", tx);
    let load = {
        let d = d.clone();
        tokio::spawn(async move {
            d.image_load("n1", load_op(100), chunks(&[b"x"]), Duration::from_secs(5))
                .await
        })
    };
    let Some(ToAgent::Image(op)) = to_agent.recv().await else {
        panic!("no image op sent");
    };
    let (leg, _rx) = mpsc::channel(1);
    assert_eq!(
        d.image_upload(&op.request_id, "n2", leg.clone()),
        Err(UploadError::OtherNode(op.request_id.clone()))
    );
    assert_eq!(
        d.image_upload("nope", "n1", leg),
        Err(UploadError::Unknown("nope".into()))
    );
    load.abort();
}

#[tokio::test(start_paused = true)]
async fn a_node_that_never_fetches_the_upload_times_out_and_is_forgotten() {
    let d = dispatcher();
    let (tx, _to_agent) = mpsc::channel(4);
    d.open_session("n1", tx);
    let got = d
        .image_load("n1", load_op(100), chunks(&[b"x"]), Duration::from_secs(60))
        .await;
    assert_eq!(
        got,
        Err(LoadError::Relay(RelayError::Timeout {
            after: Duration::from_secs(5)
        }))
    );
    assert_eq!(d.uploads.waiting(), 0);
}

#[tokio::test]
async fn a_node_without_a_session_is_not_connected() {
    let d = dispatcher();
    let got = d
        .image_op("n1", pb::ImageOp::default(), Duration::from_secs(5))
        .await;
    assert_eq!(got, Err(RelayError::NotConnected { node: "n1".into() }));
    let got = d
        .image_load("n1", load_op(100), chunks(&[b"x"]), Duration::from_secs(5))
        .await;
    assert_eq!(
        got,
        Err(LoadError::Relay(RelayError::NotConnected {
            node: "n1".into()
        }))
    );
    assert_eq!(d.uploads.waiting(), 0);
}
