//! The client against servers the test starts on 127.0.0.1: one that closes, one that never
//! answers, one that answers garbage. Each must give a typed error quickly.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

fn quick(port: u16) -> (Client, Reference) {
    let cfg = RegistryConfig {
        insecure: vec![format!("127.0.0.1:{port}")],
        connect_timeout: Duration::from_millis(500),
        read_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    (
        Client::new(cfg).unwrap(),
        Reference::parse(&format!("127.0.0.1:{port}/t/x:1")).unwrap(),
    )
}

/// A server that answers every connection with `reply` (or never, when `None`).
async fn server(reply: Option<&'static [u8]>) -> (u16, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            match reply {
                Some(r) => {
                    let _ = s.write_all(r).await;
                    let _ = s.shutdown().await;
                }
                None => held.push(s),
            }
        }
    });
    (port, h)
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (c, r) = quick(port);
    let t = Instant::now();
    let err = c.manifest(&r).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_silent_registry_times_out() {
    let (port, h) = server(None).await;
    let (c, r) = quick(port);
    let t = Instant::now();
    let err = c.resolve(&r).await.unwrap_err();
    assert!(matches!(err, RegistryError::Timeout { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    h.abort();
}

#[tokio::test]
async fn garbage_is_a_protocol_error() {
    let (port, h) = server(Some(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 9\r\n\r\nnot json!")).await;
    let (c, r) = quick(port);
    let err = c.manifest(&r).await.unwrap_err();
    assert!(matches!(err, RegistryError::Protocol { .. }), "{err}");
    h.abort();
    let (port, h) = server(Some(b"\x00\x01 this is not http at all\r\n\r\n")).await;
    let (c, r) = quick(port);
    let err = c.manifest(&r).await.unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Protocol { .. } | RegistryError::Unreachable { .. }
        ),
        "{err}"
    );
    h.abort();
}

#[tokio::test]
async fn a_down_mirror_falls_back_to_the_registry() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (port, h) = server(Some(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"unknown\"}]}")).await;
    let mut cfg = RegistryConfig {
        insecure: vec![format!("127.0.0.1:{port}")],
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    cfg.add_mirror(&format!("127.0.0.1:{port}=http://127.0.0.1:{dead}"))
        .unwrap();
    let c = Client::new(cfg).unwrap();
    let r = Reference::parse(&format!("127.0.0.1:{port}/t/x:1")).unwrap();
    assert_eq!(
        c.endpoints(&r)
            .iter()
            .map(|e| e.host().to_string())
            .collect::<Vec<_>>(),
        [format!("127.0.0.1:{dead}"), format!("127.0.0.1:{port}")]
    );
    let err = c.manifest(&r).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::NotFound(_)),
        "the registry's answer, after the mirror failed: {err}"
    );
    assert_eq!(
        err.to_string(),
        format!("manifest for 127.0.0.1:{port}/t/x:1 not found: manifest unknown")
    );
    h.abort();
}

#[test]
fn mirror_flags_and_validation() {
    let mut cfg = RegistryConfig::default();
    cfg.add_mirror("docker.io=http://10.0.0.254:5000/").unwrap();
    assert_eq!(cfg.mirrors["docker.io"], ["http://10.0.0.254:5000"]);
    assert!(cfg.add_mirror("docker.io").is_err());
    assert!(cfg.add_mirror("docker.io=ftp://x").is_err());
    assert!(cfg.add_mirror("docker.io=http://x/path").is_err());
    let bad = RegistryConfig {
        insecure: vec!["http://x/".into()],
        ..Default::default()
    };
    assert!(bad.validate().is_err());
    // Docker Hub names go to the mirror first, then to index.docker.io.
    let c = Client::new(cfg).unwrap();
    let eps = c.endpoints(&Reference::parse("nginx").unwrap());
    assert_eq!(
        eps.iter().map(|e| e.host()).collect::<Vec<_>>(),
        ["10.0.0.254:5000", "index.docker.io"]
    );
}

#[test]
fn a_mirrors_not_found_beats_an_unreachable_upstream() {
    let nf = || RegistryError::NotFound("shoal/nope:latest".into());
    let down = || RegistryError::Unreachable {
        registry: "index.docker.io".into(),
        detail: "dns".into(),
    };
    assert!(matches!(
        super::worse(Some(nf()), down()),
        RegistryError::NotFound(_)
    ));
    assert!(matches!(
        super::worse(Some(down()), nf()),
        RegistryError::NotFound(_)
    ));
    assert!(matches!(
        super::worse(None, down()),
        RegistryError::Unreachable { .. }
    ));
}
