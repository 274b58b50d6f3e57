//! Versioned writes through the Control API of a real manager (gRPC on 127.0.0.1): clients that
//! read, change and write back a service with the version they read. A stale version is refused
//! with Docker's `update out of sequence` and changes nothing; clients that re-read and re-apply
//! their edit on that refusal all land, so no acknowledged edit is ever lost.

mod support;

use shoal_proto::pb::{self, control_client::ControlClient};
use std::time::Duration;
use support::manager;
use tonic::Code;

/// Edits applied at the same time, each by its own client.
const CLIENTS: usize = 12;
/// Attempts per client (as `swarmctl service update`).
const ATTEMPTS: usize = 40;

fn spec(name: &str) -> pb::ServiceSpec {
    pb::ServiceSpec {
        name: name.into(),
        replicas: 0,
        image: "whoami".into(),
        runtime: pb::Runtime::Process as i32,
        ..Default::default()
    }
}

async fn get(ctl: &mut ControlClient<tonic::transport::Channel>, id: &str) -> pb::Service {
    ctl.get_service(pb::IdRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

/// Adds `env` to service `id` the way `swarmctl service update --env-add` does: read, change,
/// write with the version read, and on `update out of sequence` do it all again. Returns the
/// attempts it took.
async fn add_env(url: String, id: String, env: String) -> usize {
    let mut ctl = ControlClient::connect(url).await.unwrap();
    for attempt in 1..=ATTEMPTS {
        let svc = get(&mut ctl, &id).await;
        let mut s = svc.spec.clone().unwrap();
        s.env.push(env.clone());
        let req = pb::UpdateServiceRequest {
            id: id.clone(),
            spec: Some(s),
            version: svc.version,
            rollback: false,
            skip_unchanged: false,
        };
        match ctl.update_service(req).await {
            Ok(_) => return attempt,
            Err(e) if e.code() == Code::Aborted => {
                assert!(e.message().contains("update out of sequence"), "{e:?}");
                let jitter = rand_ms(attempt);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            Err(e) => panic!("{env}: {e:?}"),
        }
    }
    panic!("{env}: no attempt landed")
}

/// A cheap spread of waits without a random generator: different per attempt and per call.
fn rand_ms(attempt: usize) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    nanos % (5 * attempt as u64 + 5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_edits_all_land_and_stale_writes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, url, stop) = manager(tmp.path()).await;
    let mut ctl = ControlClient::connect(url.clone()).await.unwrap();
    let created = ctl
        .create_service(pb::CreateServiceRequest {
            spec: Some(spec("cc")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(created.version, 0, "reads carry the version");

    // Twelve clients, twelve different edits, at once: every one is acknowledged and present.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(add_env(
                url.clone(),
                created.id.clone(),
                format!("K{i}=v{i}"),
            ))
        })
        .collect();
    let mut retried = 0;
    for c in clients {
        if c.await.unwrap() > 1 {
            retried += 1;
        }
    }
    let svc = get(&mut ctl, &created.id).await;
    let mut env = svc.spec.clone().unwrap().env;
    env.sort();
    let mut want: Vec<String> = (0..CLIENTS).map(|i| format!("K{i}=v{i}")).collect();
    want.sort();
    assert_eq!(env, want, "every acknowledged edit is there");
    eprintln!("{retried} of {CLIENTS} clients were refused at least once and re-applied");

    // A write with the version read before another client's change is refused and changes
    // nothing: the other client's change stays.
    let stale = svc.version;
    let mut first = svc.spec.clone().unwrap();
    first.args = vec!["--port".into(), "81".into()];
    ctl.update_service(pb::UpdateServiceRequest {
        id: svc.id.clone(),
        spec: Some(first),
        version: stale,
        rollback: false,
        skip_unchanged: false,
    })
    .await
    .unwrap();
    let mut second = svc.spec.clone().unwrap();
    second.args = vec!["--port".into(), "82".into()];
    let err = ctl
        .update_service(pb::UpdateServiceRequest {
            id: svc.id.clone(),
            spec: Some(second),
            version: stale,
            rollback: false,
            skip_unchanged: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert!(
        err.message().starts_with("update out of sequence"),
        "{}",
        err.message()
    );
    let now = get(&mut ctl, &svc.id).await;
    assert_eq!(now.spec.unwrap().args, vec!["--port", "81"]);

    // Without a version: refused, nothing changed.
    let err = ctl
        .update_service(pb::UpdateServiceRequest {
            id: svc.id.clone(),
            spec: Some(spec("cc")),
            version: 0,
            rollback: false,
            skip_unchanged: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // A bad policy: refused with the flag's name, nothing changed.
    let mut bad = now_spec(&mut ctl, &svc.id).await;
    bad.update_config = Some(pb::UpdateConfig {
        parallelism: 1,
        max_failure_ratio: 1.5,
        ..Default::default()
    });
    let v = get(&mut ctl, &svc.id).await.version;
    let err = ctl
        .update_service(pb::UpdateServiceRequest {
            id: svc.id.clone(),
            spec: Some(bad),
            version: v,
            rollback: false,
            skip_unchanged: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("--update-max-failure-ratio"),
        "{}",
        err.message()
    );
    assert_eq!(get(&mut ctl, &svc.id).await.version, v, "nothing written");

    // Rollback swaps the spec with the previous one.
    let v = get(&mut ctl, &svc.id).await.version;
    let back = ctl
        .update_service(pb::UpdateServiceRequest {
            id: svc.id.clone(),
            spec: None,
            version: v,
            rollback: true,
            skip_unchanged: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.spec.unwrap().args, Vec::<String>::new());
    assert_eq!(back.previous_spec.unwrap().args, vec!["--port", "81"]);
    assert_eq!(
        back.update_status.map(|u| (u.state(), u.message)),
        Some((
            pb::UpdateState::RollbackStarted,
            "manually requested rollback".to_string()
        ))
    );

    // A service never updated has nothing to roll back to.
    let fresh = ctl
        .create_service(pb::CreateServiceRequest {
            spec: Some(spec("fresh")),
        })
        .await
        .unwrap()
        .into_inner();
    let err = ctl
        .update_service(pb::UpdateServiceRequest {
            id: fresh.id.clone(),
            spec: None,
            version: fresh.version,
            rollback: true,
            skip_unchanged: false,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::FailedPrecondition,
            "service fresh does not have a previous spec"
        )
    );

    let _ = stop.send(());
    m.shutdown().await;
}

async fn now_spec(ctl: &mut ControlClient<tonic::transport::Channel>, id: &str) -> pb::ServiceSpec {
    get(ctl, id).await.spec.unwrap()
}
