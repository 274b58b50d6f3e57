//! Secrets and configs through the Control API of a real manager (gRPC on 127.0.0.1): create,
//! list, inspect (never a secret's data), duplicate names and bad input refused, a service's
//! references resolved, and removal of a used secret refused with Docker's wording.

mod support;

use shoal_proto::pb::{self, control_client::ControlClient};
use support::manager;
use tonic::transport::Channel;
use tonic::Code;

/// The secret value every answer is searched for.
const MARKER: &[u8] = b"pw-marker-5b1e0c";

fn create(name: &str, data: &[u8]) -> pb::CreateDataRequest {
    pb::CreateDataRequest {
        name: name.into(),
        labels: [("env".to_string(), "dev".to_string())]
            .into_iter()
            .collect(),
        data: data.to_vec(),
    }
}

fn spec(name: &str, secrets: Vec<pb::SecretReference>) -> pb::ServiceSpec {
    pb::ServiceSpec {
        name: name.into(),
        replicas: 0,
        // Secrets need a container: `--runtime process` is refused (no replicas run here).
        image: "busybox:latest".into(),
        runtime: pb::Runtime::Container as i32,
        secrets,
        ..Default::default()
    }
}

fn reference(name: &str, target: &str) -> pb::SecretReference {
    pb::SecretReference {
        name: name.into(),
        target: target.into(),
        ..Default::default()
    }
}

async fn secrets(ctl: &mut ControlClient<Channel>) -> Vec<pb::SecretInfo> {
    ctl.list_secrets(pb::Empty {})
        .await
        .unwrap()
        .into_inner()
        .secrets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_stored_never_shown_and_not_removed_while_used() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, url, stop) = manager(tmp.path()).await;
    let mut ctl = ControlClient::connect(url).await.unwrap();

    let made = ctl
        .create_secret(create("db_pass", MARKER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(made.name, "db_pass");
    assert_ne!(made.version, 0);
    assert_eq!(made.size, MARKER.len() as u64);
    assert_eq!(
        made.digest,
        shoal_manager::control::digest(MARKER),
        "inspect shows a digest"
    );
    // No answer carries the data: not create's, list's or inspect's (by name, id, id prefix).
    let listed = secrets(&mut ctl).await;
    assert_eq!(listed.len(), 1);
    for q in [&made.name, &made.id, &made.id[..6].to_string()] {
        let got = ctl
            .get_secret(pb::IdRequest { id: q.clone() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.id, made.id, "{q}");
        // `SecretInfo` has no field for the data; its text form shows it is not there.
        assert!(!format!("{got:?}").contains("pw-marker"), "{got:?}");
    }
    assert!(!format!("{listed:?}").contains("pw-marker"));

    // Bad input: refused, nothing created, the data never quoted.
    for (req, code) in [
        (create("db_pass", b"other"), Code::AlreadyExists),
        (create("-bad", b"x"), Code::InvalidArgument),
        (create("empty", b""), Code::InvalidArgument),
        (
            create("huge", &vec![b'x'; 500 * 1024 + 1]),
            Code::InvalidArgument,
        ),
    ] {
        let e = ctl.create_secret(req).await.unwrap_err();
        assert_eq!(e.code(), code, "{e:?}");
        assert!(!e.message().contains("pw-marker"), "{e:?}");
    }
    // The largest accepted goes through raft like any other.
    let big = ctl
        .create_secret(create("big", &vec![7u8; 500 * 1024]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(big.size, 500 * 1024);
    ctl.remove_secret(pb::IdRequest { id: big.id })
        .await
        .unwrap();
    let e = ctl
        .create_secret(create("db_pass", b"other"))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "secret with name \"db_pass\" already exists");
    assert_eq!(secrets(&mut ctl).await.len(), 1);

    // A service using it: references resolve to the id, the target defaults to the name.
    let web = ctl
        .create_service(pb::CreateServiceRequest {
            spec: Some(spec("web", vec![reference("db_pass", "")])),
        })
        .await
        .unwrap()
        .into_inner();
    let r = &web.spec.as_ref().unwrap().secrets[0];
    assert_eq!(
        (r.id.as_str(), r.target.as_str()),
        (made.id.as_str(), "db_pass")
    );
    assert_eq!(r.mode, Some(0o444), "Docker's default mode");

    // References to nothing, or escaping /run/secrets: refused, no service created.
    for (name, refs) in [
        ("ghost", vec![reference("nope", "")]),
        ("escape", vec![reference("db_pass", "../../etc/shadow")]),
        ("outside", vec![reference("db_pass", "/etc/shadow")]),
        (
            "twice",
            vec![reference("db_pass", "a"), reference("db_pass", "a")],
        ),
    ] {
        let e = ctl
            .create_service(pb::CreateServiceRequest {
                spec: Some(spec(name, refs)),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{name}: {e:?}");
    }
    assert_eq!(
        ctl.list_services(pb::Empty {})
            .await
            .unwrap()
            .into_inner()
            .services
            .len(),
        1
    );

    // In use: refused with Docker's wording; once the service is gone, removed.
    let e = ctl
        .remove_secret(pb::IdRequest {
            id: "db_pass".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(
        e.message(),
        "secret 'db_pass' is in use by the following service: web"
    );
    ctl.remove_service(pb::IdRequest { id: web.id.clone() })
        .await
        .unwrap();
    ctl.remove_secret(pb::IdRequest {
        id: "db_pass".into(),
    })
    .await
    .unwrap();
    assert!(secrets(&mut ctl).await.is_empty());
    let e = ctl
        .get_secret(pb::IdRequest {
            id: "db_pass".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    let _ = stop.send(());
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_show_their_data_and_need_absolute_targets() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, url, stop) = manager(tmp.path()).await;
    let mut ctl = ControlClient::connect(url).await.unwrap();
    let made = ctl
        .create_config(create("app.conf", b"listen 80;\n"))
        .await
        .unwrap()
        .into_inner();
    let got = ctl
        .get_config(pb::IdRequest {
            id: "app.conf".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.data, b"listen 80;\n", "a config's data is shown");
    assert_eq!(got.id, made.id);
    let with = |target: &str| pb::ServiceSpec {
        configs: vec![pb::ConfigReference {
            name: "app.conf".into(),
            target: target.into(),
            ..Default::default()
        }],
        ..spec("web", vec![])
    };
    let e = ctl
        .create_service(pb::CreateServiceRequest {
            spec: Some(with("etc/app.conf")),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let web = ctl
        .create_service(pb::CreateServiceRequest {
            spec: Some(with("")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(web.spec.unwrap().configs[0].target, "/app.conf");
    let e = ctl
        .remove_config(pb::IdRequest {
            id: made.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "config 'app.conf' is in use by the following service: web"
    );
    let _ = stop.send(());
    m.shutdown().await;
}
