//! The node's image operations on a real store (in a temporary directory; no root, no
//! registry), with a fake executor source to hold pulls in flight.

use super::*;
use shoal_image::registry::RegistryConfig;
use shoal_proto::pb;
use std::path::Path;
use tokio::sync::Notify;

/// An executor source whose pulls wait until released; counts collections.
#[derive(Debug, Default)]
struct Held {
    release: Notify,
    collections: std::sync::atomic::AtomicUsize,
}

impl ImageSource for Held {
    fn lower_dir<'a>(
        &'a self,
        _image: &'a str,
        _digest: &'a str,
        _progress: &'a (dyn Fn(&str) + Send + Sync),
    ) -> BoxFuture<'a, Result<(PathBuf, ImageConfig), Error>> {
        Box::pin(async move {
            self.release.notified().await;
            Ok((PathBuf::from("/nowhere"), ImageConfig::default()))
        })
    }

    fn collect(&self, _in_use: &HashSet<PathBuf>) {
        self.collections
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn node_images(dir: &Path) -> (Arc<NodeImages>, Arc<Held>) {
    let store = Store::open(dir.join("images")).unwrap();
    let client = Client::new(RegistryConfig::default()).unwrap();
    let held = Arc::new(Held::default());
    let images = NodeImages::with_source(held.clone(), store, client)
        .with_busy_wait(Duration::from_millis(200));
    (Arc::new(images), held)
}

/// A `docker save` directory of one image named `tags`, its config made unique by `env`.
fn save_dir(dir: &Path, tags: &[&str], env: &str) -> PathBuf {
    let d = dir.join(format!("save-{env}"));
    std::fs::create_dir_all(&d).unwrap();
    // An empty tar: two zero blocks.
    let layer = vec![0u8; 1024];
    std::fs::write(d.join("layer.tar"), &layer).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": [env] },
        "rootfs": { "type": "layers", "diff_ids": [shoal_image::Digest::of(&layer).to_string()] },
    });
    std::fs::write(d.join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();
    let manifest = serde_json::json!([
        { "Config": "config.json", "RepoTags": tags, "Layers": ["layer.tar"] }
    ]);
    std::fs::write(
        d.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    d
}

fn task(name: &str, image: &str) -> TaskImage {
    TaskImage {
        task: name.into(),
        image: image.into(),
    }
}

fn names(images: &NodeImages) -> Vec<String> {
    let mut n: Vec<String> = images
        .list(&[])
        .unwrap()
        .into_iter()
        .flat_map(|i| i.references)
        .collect();
    n.sort();
    n
}

#[tokio::test]
async fn load_lists_and_rm_refuses_an_image_a_task_uses() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = node_images(dir.path());
    let loaded = images
        .load(&save_dir(
            dir.path(),
            &["shoal/app:1", "shoal/app:latest"],
            "A=1",
        ))
        .await
        .unwrap();
    assert_eq!(loaded.len(), 2, "one summary per name loaded");
    images
        .load(&save_dir(dir.path(), &["shoal/other:1"], "B=1"))
        .await
        .unwrap();
    let tasks = [task("web.1.abc", "shoal/app:1")];
    let listed = images.list(&tasks).unwrap();
    let app = listed
        .iter()
        .find(|i| i.references.contains(&"shoal/app:1".to_string()))
        .unwrap();
    assert_eq!(app.used_by, vec!["web.1.abc"]);
    assert!(app.size > 0);

    let (_, _, errors) = images
        .remove(&["shoal/app:1".into()], false, &tasks)
        .await
        .unwrap();
    let short = &app.id[7..19];
    assert_eq!(
        errors,
        vec![format!("conflict: unable to remove repository reference \"shoal/app:1\" (must force) - task web.1.abc is using its referenced image {short}")]
    );
    // By id, with -f: the image would go, which is never done while a task uses it.
    let (_, _, errors) = images
        .remove(std::slice::from_ref(&app.id), true, &tasks)
        .await
        .unwrap();
    assert_eq!(
        errors,
        vec![format!("conflict: unable to delete {short} (cannot be forced) - image is being used by running task web.1.abc")]
    );
    // With -f, one of two names: the image stays for the task.
    let (deleted, _, errors) = images
        .remove(&["shoal/app:latest".into()], true, &tasks)
        .await
        .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(deleted[0].untagged, "shoal/app:latest");
    assert_eq!(deleted.len(), 1, "not deleted: another name keeps it");
    assert_eq!(names(&images), vec!["shoal/app:1", "shoal/other:1"]);

    // Unused, and unknown: one goes, the other is Docker's error; the call itself succeeds.
    let (deleted, reclaimed, errors) = images
        .remove(&["shoal/other:1".into(), "nope:1".into()], false, &tasks)
        .await
        .unwrap();
    assert_eq!(errors, vec!["No such image: nope:1"]);
    assert_eq!(deleted.len(), 2, "untagged and deleted: {deleted:?}");
    assert!(deleted[1].deleted.starts_with("sha256:"));
    assert!(
        reclaimed > 0 && reclaimed < 1024,
        "its config and manifest, not its layer (shared with shoal/app): {reclaimed}"
    );
    assert_eq!(names(&images), vec!["shoal/app:1"]);
}

#[tokio::test]
async fn by_id_an_image_with_several_names_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = node_images(dir.path());
    images
        .load(&save_dir(dir.path(), &["a:1", "b:1"], "A=1"))
        .await
        .unwrap();
    let id = images.list(&[]).unwrap()[0].id.clone();
    let (_, _, errors) = images
        .remove(std::slice::from_ref(&id), false, &[])
        .await
        .unwrap();
    assert_eq!(
        errors,
        vec![format!(
            "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
            &id[7..19]
        )]
    );
    let (deleted, reclaimed, errors) = images.remove(&[id], true, &[]).await.unwrap();
    assert!(errors.is_empty());
    assert_eq!(deleted.len(), 3, "two names untagged, the image deleted");
    assert!(reclaimed >= 1024, "the layer went: {reclaimed}");
    assert!(images.list(&[]).unwrap().is_empty());
}

#[tokio::test]
async fn prune_takes_unnamed_images_and_with_all_every_unused_one() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = node_images(dir.path());
    images
        .load(&save_dir(dir.path(), &["used:1"], "A=1"))
        .await
        .unwrap();
    images
        .load(&save_dir(dir.path(), &["idle:1"], "B=1"))
        .await
        .unwrap();
    images
        .load(&save_dir(dir.path(), &[], "C=1"))
        .await
        .unwrap();
    let tasks = [task("web.1.x", "used:1")];
    assert_eq!(images.list(&tasks).unwrap().len(), 3);

    let (deleted, _) = images.prune(false, &tasks).await.unwrap();
    assert_eq!(deleted.len(), 1, "only the unnamed one: {deleted:?}");
    assert_eq!(names(&images), vec!["idle:1", "used:1"]);

    let (deleted, _) = images.prune(true, &tasks).await.unwrap();
    assert_eq!(deleted[0].untagged, "idle:1");
    assert_eq!(names(&images), vec!["used:1"], "the image in use stays");
}

#[tokio::test]
async fn a_garbage_archive_leaves_the_store_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = node_images(dir.path());
    images
        .load(&save_dir(dir.path(), &["keep:1"], "A=1"))
        .await
        .unwrap();
    let blobs = |images: &NodeImages| {
        let mut v: Vec<_> = std::fs::read_dir(images.store().dir().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let before = blobs(&images);

    let garbage = dir.path().join("garbage.tar");
    std::fs::write(&garbage, b"this is not a tar archive at all").unwrap();
    assert!(images.load(&garbage).await.is_err());

    // A docker save whose layer does not match its config: blobs are written, then refused.
    let bad = save_dir(dir.path(), &["bad:1"], "B=1");
    std::fs::write(bad.join("layer.tar"), vec![0u8; 2048]).unwrap();
    let e = images.load(&bad).await.unwrap_err();
    assert!(e.to_string().contains("unpacks to"), "{e}");

    assert_eq!(names(&images), vec!["keep:1"]);
    assert_eq!(
        blobs(&images),
        before,
        "what the failed load wrote was collected"
    );
    let tmp = std::fs::read_dir(images.store().dir().join("tmp"))
        .unwrap()
        .count();
    assert_eq!(tmp, 0, "nothing left in tmp/");
}

#[tokio::test]
async fn removals_wait_for_pulls_in_flight_and_collection_waits_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let (images, held) = node_images(dir.path());
    images
        .load(&save_dir(dir.path(), &["a:1"], "A=1"))
        .await
        .unwrap();
    // A task's pull in flight.
    let pulling = {
        let images = images.clone();
        tokio::spawn(async move { images.lower_dir("b:1", "", &|_| {}).await.map(|_| ()) })
    };
    // Wait until the pull holds the lock (it is waiting on `release` then).
    while images.lock.try_write().is_ok() {
        tokio::task::yield_now().await;
    }
    let e = images
        .remove(&["a:1".into()], false, &[])
        .await
        .unwrap_err();
    assert!(matches!(e, OpError::Busy { .. }), "{e}");
    assert!(e.to_string().contains("busy with pulls or loads"), "{e}");
    assert!(images.prune(true, &[]).await.is_err());
    // A waiting `rm` does not hold back other readers (task starts): it polls, never queues.
    let waiting = {
        let images = images.clone();
        tokio::spawn(async move { images.remove(&["a:1".into()], false, &[]).await.is_err() })
    };
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(
        images.lock.try_read().is_ok(),
        "a waiting rm blocks new readers"
    );
    assert!(waiting.await.unwrap(), "rm got the lock during a pull");
    images.collect(&HashSet::new());
    assert_eq!(
        held.collections.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no collection during a pull"
    );
    held.release.notify_one();
    pulling.await.unwrap().unwrap();
    let (deleted, _, errors) = images.remove(&["a:1".into()], false, &[]).await.unwrap();
    assert!(
        errors.is_empty() && deleted.len() == 2,
        "{deleted:?} {errors:?}"
    );
    images.collect(&HashSet::new());
    assert_eq!(
        held.collections.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn an_image_a_container_runs_on_is_in_use_without_a_task_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = node_images(dir.path());
    images
        .load(&save_dir(dir.path(), &["adopted:1"], "A=1"))
        .await
        .unwrap();
    let img = images.store().inspect("adopted:1").unwrap();
    images.collect(&HashSet::from([images.store().root(&img)]));
    let listed = images.list(&[]).unwrap();
    assert_eq!(listed[0].used_by, vec![String::new()]);
    let (_, _, errors) = images
        .remove(&["adopted:1".into()], false, &[])
        .await
        .unwrap();
    assert!(
        errors[0].contains("(a container adopted on this node)"),
        "{errors:?}"
    );
    let (deleted, _) = images.prune(true, &[]).await.unwrap();
    assert!(deleted.is_empty());
}

#[tokio::test]
async fn an_upload_is_bounded_and_a_broken_one_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let chunk = |b: &[u8]| {
        Ok(pb::ImageLoadChunk {
            node: String::new(),
            data: b.to_vec(),
        })
    };
    let ok = tokio_stream::iter(vec![chunk(b"abc"), chunk(b"def")]);
    let path = receive(ok, dir.path(), 6).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"abcdef");
    drop(path);
    let big = tokio_stream::iter(vec![chunk(b"abc"), chunk(b"defg")]);
    let e = receive(big, dir.path(), 6).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "the archive is larger than 6 bytes; nothing was loaded"
    );
    let broken = tokio_stream::iter(vec![
        chunk(b"abc"),
        Err(tonic::Status::cancelled("the client left")),
    ]);
    let e = receive(broken, dir.path(), 0).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "the upload broke off: the client left; nothing was loaded"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file left"
    );
}
