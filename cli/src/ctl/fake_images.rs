//! The fake's image stores (see [`super::fake`]): per node hostname, in memory. `pull` knows the
//! images of the fake's `registry`; `load` takes an "archive" of the form `FAKE-ARCHIVE\n`
//! followed by one image name per line and refuses anything else, as a node refuses a garbage
//! tar; `rm` refuses an image with users unless `force` and another name keeps it.

use super::fake::Fake;
use shoal_proto::pb;
use tonic::{Request, Response, Status};

type R<T> = Result<Response<T>, Status>;

/// The first line of an archive the fake loads.
pub(crate) const ARCHIVE_MAGIC: &str = "FAKE-ARCHIVE\n";

fn id_of(name: &str) -> String {
    use sha2::Digest;
    format!("sha256:{:x}", sha2::Sha256::digest(name.as_bytes()))
}

/// An image named `name` for the fake's stores.
pub(crate) fn image(name: &str, size: u64, used_by: &[&str]) -> pb::ImageSummary {
    pb::ImageSummary {
        references: vec![name.to_string()],
        id: id_of(name),
        digest: id_of(&format!("manifest of {name}")),
        size,
        used_by: used_by.iter().map(|u| u.to_string()).collect(),
    }
}

/// The nodes a request names (every ready one when empty), as (id, hostname).
fn nodes(f: &Fake, query: &str) -> Result<Vec<(String, String)>, Status> {
    let s = f.lock();
    let idx: Vec<usize> = if query.is_empty() {
        (0..s.nodes.len())
            .filter(|&i| s.nodes[i].state == pb::NodeState::Ready as i32)
            .collect()
    } else {
        vec![s.node_idx(query)?]
    };
    Ok(idx
        .into_iter()
        .map(|i| (s.nodes[i].id.clone(), s.nodes[i].hostname.clone()))
        .collect())
}

fn each(
    f: &Fake,
    query: &str,
    mut act: impl FnMut(&mut Vec<pb::ImageSummary>, &mut pb::ImageNodeReport),
) -> R<pb::ImageReport> {
    let mut out = pb::ImageReport::default();
    for (id, hostname) in nodes(f, query)? {
        let mut rep = pb::ImageNodeReport {
            node_id: id,
            hostname: hostname.clone(),
            ..Default::default()
        };
        let mut s = f.lock();
        act(s.images.entry(hostname).or_default(), &mut rep);
        out.nodes.push(rep);
    }
    Ok(Response::new(out))
}

pub(crate) async fn list(f: &Fake, req: Request<pb::ImageRequest>) -> R<pb::ImageReport> {
    let r = req.into_inner();
    each(f, &r.node, |store, rep| rep.images = store.clone())
}

pub(crate) async fn pull(f: &Fake, req: Request<pb::ImageRequest>) -> R<pb::ImageReport> {
    let r = req.into_inner();
    let name = r.images.first().cloned().unwrap_or_default();
    let known = f.lock().registry.contains_key(&name);
    each(f, &r.node, |store, rep| {
        if !known {
            rep.error = format!("No such image: {name}");
            return;
        }
        let img = image(&name, 1_234_567, &[]);
        store.retain(|i| i.id != img.id);
        store.push(img.clone());
        rep.images = vec![img];
    })
}

pub(crate) async fn remove(f: &Fake, req: Request<pb::ImageRequest>) -> R<pb::ImageReport> {
    let r = req.into_inner();
    each(f, &r.node, |store, rep| {
        for name in &r.images {
            let Some(pos) = store
                .iter()
                .position(|i| i.references.contains(name) || i.id.contains(name.as_str()))
            else {
                rep.errors.push(format!("No such image: {name}"));
                continue;
            };
            if let Some(task) = store[pos].used_by.first() {
                rep.errors.push(format!("conflict: unable to remove repository reference {name:?} (must force) - task {task} is using its referenced image"));
                continue;
            }
            let img = store.remove(pos);
            rep.reclaimed += img.size;
            rep.deleted
                .extend(img.references.iter().map(|r| pb::ImageDeleted {
                    untagged: r.clone(),
                    deleted: String::new(),
                }));
            rep.deleted.push(pb::ImageDeleted {
                untagged: String::new(),
                deleted: img.id,
            });
        }
    })
}

pub(crate) async fn prune(f: &Fake, req: Request<pb::ImageRequest>) -> R<pb::ImageReport> {
    let r = req.into_inner();
    each(f, &r.node, |store, rep| {
        let (gone, kept): (Vec<_>, Vec<_>) = store
            .drain(..)
            .partition(|i| i.used_by.is_empty() && (r.all || i.references.is_empty()));
        *store = kept;
        for img in gone {
            rep.reclaimed += img.size;
            rep.deleted
                .extend(img.references.iter().map(|r| pb::ImageDeleted {
                    untagged: r.clone(),
                    deleted: String::new(),
                }));
            rep.deleted.push(pb::ImageDeleted {
                untagged: String::new(),
                deleted: img.id,
            });
        }
    })
}

pub(crate) async fn load(
    f: &Fake,
    req: Request<tonic::Streaming<pb::ImageLoadChunk>>,
) -> R<pb::ImageReport> {
    let mut chunks = req.into_inner();
    let mut node = String::new();
    let mut data = Vec::new();
    let mut count = 0;
    while let Some(c) = chunks.message().await? {
        if count == 0 {
            node = c.node;
        }
        count += 1;
        data.extend(c.data);
    }
    if node.is_empty() {
        return Err(Status::invalid_argument("image load needs a node"));
    }
    f.lock().load_chunks = count;
    let text = String::from_utf8_lossy(&data).into_owned();
    each(f, &node, |store, rep| {
        match text.strip_prefix(ARCHIVE_MAGIC) {
            None => {
                rep.error = "invalid archive: neither a docker save archive (manifest.json) nor an OCI layout (index.json)".into();
            }
            Some(names) => {
                for name in names.lines().filter(|l| !l.is_empty()) {
                    let img = image(name, data.len() as u64, &[]);
                    store.push(img.clone());
                    rep.images.push(img);
                }
            }
        }
    })
}
