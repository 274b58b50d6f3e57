//! The locked gate, served for real over a local TCP socket: every call but `Unlock` is
//! FAILED_PRECONDITION with the locked message; a wrong key is INVALID_ARGUMENT and leaves the
//! key file byte-identical; the right key is handed over.

use super::*;
use crate::raft::storage::{open_encrypted_with, EngineKind};
use shoal_proto::pb::control_client::ControlClient;
use tonic::Code;

#[tokio::test]
async fn a_locked_manager_answers_only_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let right = UnlockKey::generate();
    let (_, mut keys) = open_encrypted_with(EngineKind::Redb, dir.path(), None).unwrap();
    keys.lock_with(&right);
    keys.save(&dir.path().join(FILE)).unwrap();
    assert!(is_locked(dir.path()).unwrap());
    let file_before = std::fs::read(dir.path().join(FILE)).unwrap();

    let (svc, mut rx) = LockedControl::new(dir.path().to_path_buf());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mut c = ControlClient::connect(format!("http://{addr}"))
        .await
        .unwrap();

    let e = c.get_cluster(pb::Empty {}).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(e.message(), LOCKED_MESSAGE);
    let e = c.list_services(pb::Empty {}).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);

    for bad in [
        UnlockKey::generate().to_text().to_string(),
        "SWMKEY-1-nonsense".to_string(),
        String::new(),
    ] {
        let e = c
            .unlock(pb::UnlockRequest { key: bad.clone() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(e.message(), "invalid unlock key");
        if !bad.is_empty() {
            assert!(!e.message().contains(&bad));
        }
    }
    assert!(rx.try_recv().is_err(), "a wrong key unlocked");
    assert_eq!(std::fs::read(dir.path().join(FILE)).unwrap(), file_before);

    // The start-up takes the key and says the manager runs; only then is the call answered.
    let starter = tokio::spawn(async move {
        let u = rx.await.unwrap();
        let _ = u.started.send(());
        u.key
    });
    c.unlock(pb::UnlockRequest {
        key: right.to_text().to_string(),
    })
    .await
    .unwrap();
    let got = starter.await.unwrap();
    assert_eq!(got.kek().expose(), right.kek().expose());
    server.abort();
}
