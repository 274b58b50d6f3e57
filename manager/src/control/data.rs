//! `secret create|ls|inspect|rm` and `config create|ls|inspect|rm`, and the checks of a
//! service's `--secret`/`--config` references.
//!
//! Secrets and configs are immutable but for their labels (`UpdateSecret`, `UpdateConfig`:
//! Docker's `/secrets/{id}/update`, which `docker stack deploy` calls). No answer ever carries a secret's
//! data (its inspect shows a sha256 digest); a config's answers carry its data, as Docker's do.
//! Neither the data nor its size limit's violation quote the data in a log or an error.

use super::{ControlError, ControlService, R};
use crate::store::State;
use shoal_proto::model::{
    data_name_ok, now_ms, Command, ConfigObject, ConfigReference, DataObject, Opaque, SecretObject,
    SecretReference, ServiceSpec, MAX_DATA_BYTES,
};
use shoal_proto::pb;
use std::collections::BTreeSet;
use tonic::{Request, Response};
use tracing::instrument;

/// Where secrets appear in a task.
pub const SECRETS_DIR: &str = "/run/secrets";

/// `sha256:<hex>` of `data`.
pub fn digest(data: &[u8]) -> String {
    shoal_image::digest::Digest::of(data).as_str().to_string()
}

/// Checks a create request's name and data size; `kind` is `secret` or `config`.
fn check_create(kind: &'static str, r: &pb::CreateDataRequest) -> Result<(), ControlError> {
    if !data_name_ok(&r.name) {
        return Err(ControlError::DataName {
            kind,
            name: r.name.clone(),
        });
    }
    if r.data.is_empty() || r.data.len() > MAX_DATA_BYTES {
        return Err(ControlError::DataSize {
            kind,
            size: r.data.len(),
            max: MAX_DATA_BYTES,
        });
    }
    Ok(())
}

/// The stored object of a create request.
fn object<Id: From<String>>(r: pb::CreateDataRequest) -> DataObject<Id> {
    let now = now_ms();
    DataObject {
        id: Id::from(shoal_proto::model::new_id()),
        name: r.name,
        labels: r.labels.into_iter().collect(),
        data: Opaque(r.data),
        created_ms: now,
        updated_ms: now,
        version: 0,
    }
}

/// A secret's metadata as answered: never its data.
pub fn secret_info(o: &SecretObject) -> pb::SecretInfo {
    pb::SecretInfo {
        id: o.id.to_string(),
        name: o.name.clone(),
        labels: o.labels.clone().into_iter().collect(),
        digest: digest(&o.data.0),
        size: o.data.0.len() as u64,
        created_ms: o.created_ms,
        updated_ms: o.updated_ms,
        version: o.version,
    }
}

/// A config as answered, with its data.
pub fn config_info(o: &ConfigObject) -> pb::ConfigInfo {
    pb::ConfigInfo {
        id: o.id.to_string(),
        name: o.name.clone(),
        labels: o.labels.clone().into_iter().collect(),
        digest: digest(&o.data.0),
        size: o.data.0.len() as u64,
        created_ms: o.created_ms,
        updated_ms: o.updated_ms,
        version: o.version,
        data: o.data.0.clone(),
    }
}

#[instrument(skip_all, fields(secret = %req.get_ref().name))]
pub(super) async fn create_secret(
    svc: &ControlService,
    req: Request<pb::CreateDataRequest>,
) -> R<pb::SecretInfo> {
    let r = req.into_inner();
    check_create("secret", &r)?;
    let id = svc.write(Command::CreateSecret(object(r))).await?.id;
    let s = svc.m.store.read();
    let o = s
        .secrets
        .get(id.as_str())
        .ok_or(ControlError::Vanished("secret"))?;
    Ok(Response::new(secret_info(o)))
}

pub(super) async fn list_secrets(svc: &ControlService, _: Request<pb::Empty>) -> R<pb::SecretList> {
    let s = svc.m.store.read();
    Ok(Response::new(pb::SecretList {
        secrets: s.secrets.values().map(secret_info).collect(),
    }))
}

pub(super) async fn get_secret(
    svc: &ControlService,
    req: Request<pb::IdRequest>,
) -> R<pb::SecretInfo> {
    let s = svc.m.store.read();
    Ok(Response::new(secret_info(s.secret(&req.get_ref().id)?)))
}

#[instrument(skip_all, fields(secret = %req.get_ref().id))]
pub(super) async fn remove_secret(
    svc: &ControlService,
    req: Request<pb::IdRequest>,
) -> R<pb::Empty> {
    let id = svc.m.store.read().secret(&req.get_ref().id)?.id.clone();
    svc.write(Command::RemoveSecret { id }).await?;
    Ok(Response::new(pb::Empty {}))
}

#[instrument(skip_all, fields(config = %req.get_ref().name))]
pub(super) async fn create_config(
    svc: &ControlService,
    req: Request<pb::CreateDataRequest>,
) -> R<pb::ConfigInfo> {
    let r = req.into_inner();
    check_create("config", &r)?;
    let id = svc.write(Command::CreateConfig(object(r))).await?.id;
    let s = svc.m.store.read();
    let o = s
        .configs
        .get(id.as_str())
        .ok_or(ControlError::Vanished("config"))?;
    Ok(Response::new(config_info(o)))
}

pub(super) async fn list_configs(svc: &ControlService, _: Request<pb::Empty>) -> R<pb::ConfigList> {
    let s = svc.m.store.read();
    Ok(Response::new(pb::ConfigList {
        configs: s.configs.values().map(config_info).collect(),
    }))
}

pub(super) async fn get_config(
    svc: &ControlService,
    req: Request<pb::IdRequest>,
) -> R<pb::ConfigInfo> {
    let s = svc.m.store.read();
    Ok(Response::new(config_info(s.config(&req.get_ref().id)?)))
}

#[instrument(skip_all, fields(config = %req.get_ref().id))]
pub(super) async fn remove_config(
    svc: &ControlService,
    req: Request<pb::IdRequest>,
) -> R<pb::Empty> {
    let id = svc.m.store.read().config(&req.get_ref().id)?.id.clone();
    svc.write(Command::RemoveConfig { id }).await?;
    Ok(Response::new(pb::Empty {}))
}

/// A secret's target, relative to [`SECRETS_DIR`]: `path` relative, or absolute under it;
/// never escaping it.
pub fn secret_target(target: &str) -> Result<String, ControlError> {
    let bad = |why| ControlError::DataTarget {
        kind: "secret",
        target: target.to_string(),
        why,
    };
    let rel = match target.strip_prefix('/') {
        Some(_) => target
            .strip_prefix(SECRETS_DIR)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| bad("an absolute target must be under /run/secrets"))?,
        None => target,
    };
    clean_components(rel).map_err(bad)?;
    Ok(rel.to_string())
}

/// A config's target: an absolute path that is not the root nor under a kernel filesystem.
pub fn config_target(target: &str) -> Result<(), ControlError> {
    let bad = |why| ControlError::DataTarget {
        kind: "config",
        target: target.to_string(),
        why,
    };
    let rel = target
        .strip_prefix('/')
        .ok_or_else(|| bad("it must be an absolute path"))?;
    clean_components(rel).map_err(bad)?;
    let top = rel.split('/').next().unwrap_or("");
    if matches!(top, "proc" | "sys" | "dev") {
        return Err(bad("it must not be under /proc, /sys or /dev"));
    }
    Ok(())
}

/// `rel` is a non-empty relative path of plain components (no `.`, `..`, empty one or NUL).
fn clean_components(rel: &str) -> Result<(), &'static str> {
    if rel.is_empty() {
        return Err("it names no file");
    }
    if rel.contains('\0') {
        return Err("it contains a NUL byte");
    }
    if rel
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err("it must be a plain path (no '.', '..' or empty component)");
    }
    Ok(())
}

/// Checks a spec's `--secret` and `--config` references and resolves them (id, name) against
/// the store, in place; fills in the default targets.
pub fn references(state: &State, spec: &mut ServiceSpec) -> Result<(), ControlError> {
    let mut targets = BTreeSet::new();
    for r in &mut spec.secrets {
        resolve_secret(state, r)?;
        if r.target.is_empty() {
            r.target = r.name.clone();
        }
        r.target = secret_target(&r.target)?;
        mode("secret", r.mode)?;
        if !targets.insert(r.target.clone()) {
            return Err(ControlError::DataTargetTwice {
                kind: "secret",
                target: r.target.clone(),
            });
        }
    }
    let mut targets = BTreeSet::new();
    for r in &mut spec.configs {
        resolve_config(state, r)?;
        if r.target.is_empty() {
            r.target = format!("/{}", r.name);
        }
        config_target(&r.target)?;
        mode("config", r.mode)?;
        if !targets.insert(r.target.clone()) {
            return Err(ControlError::DataTargetTwice {
                kind: "config",
                target: r.target.clone(),
            });
        }
    }
    let uses = !spec.secrets.is_empty() || !spec.configs.is_empty();
    if uses && spec.runtime == shoal_proto::model::Runtime::Process {
        return Err(ControlError::DataNeedsContainer);
    }
    Ok(())
}

fn mode(kind: &'static str, mode: u32) -> Result<(), ControlError> {
    if mode > 0o7777 {
        return Err(ControlError::DataMode { kind, mode });
    }
    Ok(())
}

/// What a reference names: the id the managers set, else what the user typed.
fn query<Id: AsRef<str>>(id: &Id, name: &str) -> String {
    if id.as_ref().is_empty() {
        name.to_string()
    } else {
        id.as_ref().to_string()
    }
}

fn resolve_secret(state: &State, r: &mut SecretReference) -> Result<(), ControlError> {
    let q = query(&r.id, &r.name);
    let o = state.secret(&q).map_err(|_| ControlError::NoSuchData {
        kind: "secret",
        name: q.clone(),
    })?;
    r.id = o.id.clone();
    r.name = o.name.clone();
    Ok(())
}

fn resolve_config(state: &State, r: &mut ConfigReference) -> Result<(), ControlError> {
    let q = query(&r.id, &r.name);
    let o = state.config(&q).map_err(|_| ControlError::NoSuchData {
        kind: "config",
        name: q.clone(),
    })?;
    r.id = o.id.clone();
    r.name = o.name.clone();
    Ok(())
}

/// `UpdateSecret`: a secret's labels replaced, if it is still at the version read.
#[instrument(skip_all, fields(secret = %req.get_ref().id))]
pub(super) async fn update_secret(
    svc: &ControlService,
    req: Request<pb::UpdateDataRequest>,
) -> R<pb::SecretInfo> {
    let r = req.into_inner();
    let id = svc.m.store.read().secret(&r.id)?.id.clone();
    svc.write(Command::SetSecretLabels {
        id: id.clone(),
        version: r.version,
        labels: r.labels.into_iter().collect(),
        updated_ms: now_ms(),
    })
    .await?;
    let s = svc.m.store.read();
    let o = s
        .secrets
        .get(id.as_str())
        .ok_or(ControlError::Vanished("secret"))?;
    Ok(Response::new(secret_info(o)))
}

/// `UpdateConfig`: a config's labels replaced, if it is still at the version read.
#[instrument(skip_all, fields(config = %req.get_ref().id))]
pub(super) async fn update_config(
    svc: &ControlService,
    req: Request<pb::UpdateDataRequest>,
) -> R<pb::ConfigInfo> {
    let r = req.into_inner();
    let id = svc.m.store.read().config(&r.id)?.id.clone();
    svc.write(Command::SetConfigLabels {
        id: id.clone(),
        version: r.version,
        labels: r.labels.into_iter().collect(),
        updated_ms: now_ms(),
    })
    .await?;
    let s = svc.m.store.read();
    let o = s
        .configs
        .get(id.as_str())
        .ok_or(ControlError::Vanished("config"))?;
    Ok(Response::new(config_info(o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_targets_stay_under_run_secrets() {
        assert_eq!(secret_target("db_pass").unwrap(), "db_pass");
        assert_eq!(secret_target("app/db").unwrap(), "app/db");
        assert_eq!(secret_target("/run/secrets/db").unwrap(), "db");
        for bad in [
            "",
            "../etc/passwd",
            "a/../../x",
            "/etc/passwd",
            "/run/secrets",
            "/run/secrets/",
            "/run/secretsx/a",
            "a//b",
            "./a",
            "a/",
        ] {
            let e = secret_target(bad).unwrap_err();
            assert!(matches!(e, ControlError::DataTarget { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn config_targets_are_absolute_and_not_special() {
        config_target("/etc/nginx/nginx.conf").unwrap();
        config_target("/app.conf").unwrap();
        for bad in [
            "",
            "app.conf",
            "/",
            "/etc/../x",
            "/proc/1/x",
            "/sys/a",
            "/dev/null",
        ] {
            assert!(config_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn create_checks_name_and_size_without_quoting_the_data() {
        let req = |name: &str, data: Vec<u8>| pb::CreateDataRequest {
            name: name.into(),
            labels: Default::default(),
            data,
        };
        check_create("secret", &req("db", b"x".to_vec())).unwrap();
        check_create("secret", &req("db", vec![b'x'; MAX_DATA_BYTES])).unwrap();
        let e = check_create("secret", &req("db", vec![])).unwrap_err();
        assert!(e.to_string().contains("larger than 0"), "{e}");
        let e = check_create("secret", &req("db", vec![b'q'; MAX_DATA_BYTES + 1])).unwrap_err();
        assert!(!e.to_string().contains("qqq"), "{e}");
        assert!(matches!(
            check_create("config", &req("-x", b"x".to_vec())),
            Err(ControlError::DataName { .. })
        ));
        let r = req("db", b"marker-7f3a".to_vec());
        assert!(!format!("{r:?}").contains("marker"), "{r:?}");
    }

    #[test]
    fn references_resolve_and_default_their_targets() {
        let mut st = State::default();
        st.apply(
            1,
            &Command::CreateSecret(SecretObject {
                id: "sec1".into(),
                name: "db".into(),
                data: Opaque(b"x".to_vec()),
                ..Default::default()
            }),
        );
        st.apply(
            2,
            &Command::CreateConfig(ConfigObject {
                id: "cfg1".into(),
                name: "app.conf".into(),
                data: Opaque(b"x".to_vec()),
                ..Default::default()
            }),
        );
        let mut spec = ServiceSpec {
            secrets: vec![SecretReference {
                name: "db".into(),
                mode: 0o400,
                ..Default::default()
            }],
            configs: vec![ConfigReference {
                name: "cfg".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        references(&st, &mut spec).unwrap();
        assert_eq!(spec.secrets[0].id, "sec1");
        assert_eq!(spec.secrets[0].target, "db");
        assert_eq!(spec.configs[0].id, "cfg1", "resolved by id prefix");
        assert_eq!(spec.configs[0].target, "/app.conf");
        let mut dup = spec.clone();
        dup.secrets.push(dup.secrets[0].clone());
        assert!(matches!(
            references(&st, &mut dup),
            Err(ControlError::DataTargetTwice { .. })
        ));
        let mut bad = spec.clone();
        bad.secrets[0].mode = 0o10000;
        assert!(matches!(
            references(&st, &mut bad),
            Err(ControlError::DataMode { .. })
        ));
        let mut none = spec;
        none.secrets[0].id = Default::default();
        none.secrets[0].name = "nope".into();
        assert_eq!(
            references(&st, &mut none).unwrap_err().to_string(),
            "secret nope not found; create it with `swarmctl secret create nope FILE`"
        );
    }
}
