//! What `docker stack deploy` and `docker events` need from the Control API of a real manager:
//! label-only secret and config updates (version-checked), a service update that changes
//! nothing left as it was (`skip_unchanged`), and `Watch`, the change feed replayed from a time
//! and ended at another.

mod support;

use shoal_proto::pb::{self, control_client::ControlClient};
use support::manager;
use tokio_stream::StreamExt as _;
use tonic::Code;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_change_unchanged_updates_do_not_and_watch_replays() {
    let tmp = tempfile::tempdir().unwrap();
    let (_m, url, _stop) = manager(tmp.path()).await;
    let mut ctl = ControlClient::connect(url).await.unwrap();
    let t0 = now_ms();

    // Secret and config labels, version-checked.
    let data = pb::CreateDataRequest {
        name: "app_pw".into(),
        labels: Default::default(),
        data: b"pw".to_vec(),
    };
    let s = ctl.create_secret(data.clone()).await.unwrap().into_inner();
    let labels: std::collections::HashMap<String, String> =
        [("com.docker.stack.namespace".to_string(), "app".to_string())].into();
    let up = ctl
        .update_secret(pb::UpdateDataRequest {
            id: "app_pw".into(),
            version: s.version,
            labels: labels.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(up.labels, labels);
    assert!(up.version > s.version);
    assert_eq!(up.digest, s.digest);
    let stale = ctl
        .update_secret(pb::UpdateDataRequest {
            id: s.id.clone(),
            version: s.version,
            labels: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    assert!(
        stale
            .message()
            .contains("update out of sequence: secret app_pw"),
        "{stale:?}"
    );
    let c = ctl.create_config(data).await.unwrap().into_inner();
    let up = ctl
        .update_config(pb::UpdateDataRequest {
            id: c.id.clone(),
            version: c.version,
            labels: labels.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((up.labels, up.data), (labels, b"pw".to_vec()));

    // A service update with the same spec: nothing written.
    let spec = pb::ServiceSpec {
        name: "app_web".into(),
        replicas: 0,
        image: "busybox:latest".into(),
        runtime: pb::Runtime::Container as i32,
        ..Default::default()
    };
    let svc = ctl
        .create_service(pb::CreateServiceRequest {
            spec: Some(spec.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    let svc = ctl
        .get_service(pb::IdRequest { id: svc.id })
        .await
        .unwrap()
        .into_inner();
    let update = |spec: pb::ServiceSpec, version| pb::UpdateServiceRequest {
        id: svc.id.clone(),
        spec: Some(spec),
        version,
        rollback: false,
        skip_unchanged: true,
    };
    let same = ctl
        .update_service(update(spec.clone(), svc.version))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(same.version, svc.version);
    let mut changed = spec.clone();
    changed.env = vec!["A=1".into()];
    let after = ctl
        .update_service(update(changed, svc.version))
        .await
        .unwrap()
        .into_inner();
    assert!(after.version > svc.version);
    // Unchanged, but from a stale read: refused like any stale update.
    let stale = ctl
        .update_service(update(after.spec.clone().unwrap(), svc.version))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");

    // Watch: what happened since t0, ending at once with an `until` in the past.
    let until = now_ms();
    let mut feed = ctl
        .watch(pb::WatchRequest {
            since_ms: t0,
            until_ms: until,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(e) = feed.next().await {
        let e = e.unwrap();
        seen.push((e.kind, e.action, e.name));
    }
    let has = |k: &str, a: &str, n: &str| {
        seen.iter()
            .any(|(kk, aa, nn)| kk == k && aa == a && nn == n)
    };
    assert!(has("secret", "create", "app_pw"), "{seen:?}");
    assert!(has("secret", "update", "app_pw"), "{seen:?}");
    assert!(has("config", "update", "app_pw"), "{seen:?}");
    assert!(has("service", "create", "app_web"), "{seen:?}");
    assert!(has("service", "update", "app_web"), "{seen:?}");

    // Live: a removal arrives on an open watch.
    let mut live = ctl
        .watch(pb::WatchRequest {
            since_ms: 0,
            until_ms: 0,
        })
        .await
        .unwrap()
        .into_inner();
    ctl.remove_service(pb::IdRequest {
        id: "app_web".into(),
    })
    .await
    .unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let e = live.next().await.unwrap().unwrap();
            if e.kind == "service" && e.action == "remove" {
                return e.name;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got, "app_web");
}
