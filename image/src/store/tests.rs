//! The store with fixture images: `docker save` and OCI layout loads (dir and tar), list,
//! inspect, config, remove, prune, and what a corrupted blob does.

use std::collections::HashSet;
use std::fs;

use super::*;
use crate::testutil::Fixture;

fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path().join("images")).unwrap();
    (d, s)
}

fn check_sample_root(s: &Store, img: &Image) {
    let root = s.root(img);
    assert_eq!(
        fs::read(root.join("bin/hello")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    assert_eq!(fs::read(root.join("etc/motd")).unwrap(), b"hello");
    assert!(
        !root.join("etc/old").exists(),
        "the upper layer's whiteout applies"
    );
    let c = s.config(img).unwrap();
    assert_eq!(c.entrypoint, ["/bin/hello"]);
    assert_eq!(c.cmd, ["--flag"]);
    assert_eq!(c.user, "www");
    assert_eq!(c.working_dir, "/srv");
    assert_eq!(c.stop_signal, "SIGQUIT");
    assert_eq!(c.exposed_ports, ["80/tcp"]);
    assert_eq!((c.os.as_str(), c.architecture.as_str()), ("linux", "amd64"));
    let u = crate::merge::resolve_user_in_root(&root, &c.user).unwrap();
    assert_eq!(
        (u.uid, u.gid, u.additional_gids.as_slice()),
        (33, 33, &[50][..])
    );
}

#[test]
fn loads_a_docker_save_archive() {
    let (d, s) = store();
    let fx = Fixture::sample();
    let tar = d.path().join("save.tar");
    fs::write(
        &tar,
        fx.docker_save(&["shoal/hello:1", "localhost:5000/hello"]),
    )
    .unwrap();
    let imgs = s.load(&tar).unwrap();
    assert_eq!(imgs.len(), 2);
    let img = s.inspect("shoal/hello:1").unwrap();
    assert_eq!(
        img.id,
        Digest::of(&fx.config),
        "the image id is the config digest, as Docker's"
    );
    assert_eq!(img.references.len(), 2);
    check_sample_root(&s, &img);
    assert_eq!(s.inspect(&img.id.hex()[..12]).unwrap().id, img.id);
    assert_eq!(s.inspect("localhost:5000/hello:latest").unwrap().id, img.id);
    assert!(
        fs::read_dir(s.dir().join("tmp")).unwrap().next().is_none(),
        "tmp/ is empty after a load"
    );
}

#[test]
fn loads_an_oci_layout_dir_and_tar() {
    let (d, s) = store();
    let fx = Fixture::sample();
    let layout = d.path().join("layout");
    let md = fx.write_oci_layout(&layout, "shoal/hello:2");
    let imgs = s.load(&layout).unwrap();
    assert_eq!(
        imgs[0].manifest, md,
        "the layout's manifest is kept byte for byte"
    );
    check_sample_root(&s, &imgs[0]);

    // The same layout as a tar, under another name: no second root.
    let (d2, s2) = store();
    let tar_path = d2.path().join("oci.tar");
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", &layout).unwrap();
    fs::write(&tar_path, b.into_inner().unwrap()).unwrap();
    let imgs = s2.load(&tar_path).unwrap();
    assert_eq!(imgs[0].references[0].to_string(), "docker.io/shoal/hello:2");
    check_sample_root(&s2, &imgs[0]);
}

#[test]
fn a_corrupted_blob_in_a_layout_is_refused_and_nothing_is_named() {
    let (d, s) = store();
    let fx = Fixture::sample();
    let layout = d.path().join("layout");
    fx.write_oci_layout(&layout, "shoal/bad:1");
    let (_, gz) = fx.oci_manifest();
    let victim = layout.join("blobs/sha256").join(Digest::of(&gz[1]).hex());
    let mut bytes = fs::read(&victim).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    fs::write(&victim, bytes).unwrap();
    let err = s.load(&layout).unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(
        !s.blob_path(&Digest::of(&gz[1])).exists(),
        "the bad blob is not kept"
    );
    assert!(s.list().unwrap().is_empty());
    assert!(matches!(
        s.inspect("shoal/bad:1"),
        Err(StoreError::NoSuchImage(_))
    ));
    assert_eq!(
        s.inspect("shoal/bad:1").unwrap_err().to_string(),
        "No such image: shoal/bad:1"
    );
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_leaves_no_root() {
    let (d, s) = store();
    let mut fx = Fixture::sample();
    // Config says one diff id; the layer is another (but the blob digests are consistent).
    let mut cfg: serde_json::Value = serde_json::from_slice(&fx.config).unwrap();
    cfg["rootfs"]["diff_ids"][0] = serde_json::Value::String(Digest::of(b"other").to_string());
    fx.config = serde_json::to_vec(&cfg).unwrap();
    let layout = d.path().join("layout");
    fx.write_oci_layout(&layout, "shoal/x:1");
    let err = s.load(&layout).unwrap_err();
    assert!(matches!(err, StoreError::DiffId { index: 0, .. }), "{err}");
    let roots: Vec<_> = fs::read_dir(s.dir().join("roots")).unwrap().collect();
    assert!(roots.is_empty(), "no root, not even a temp one: {roots:?}");
}

#[test]
fn remove_untags_then_deletes_and_prune_keeps_what_is_in_use() {
    let (d, s) = store();
    let a = Fixture::sample();
    let mut b = Fixture::sample();
    b.layers.truncate(1);
    let mut cfg: serde_json::Value = serde_json::from_slice(&b.config).unwrap();
    cfg["rootfs"]["diff_ids"] = serde_json::json!([Digest::of(&b.layers[0]).to_string()]);
    b.config = serde_json::to_vec(&cfg).unwrap();
    fs::write(d.path().join("a.tar"), a.docker_save(&["a:1", "a:2"])).unwrap();
    fs::write(d.path().join("b.tar"), b.docker_save(&["b:1"])).unwrap();
    let ia = s.load(&d.path().join("a.tar")).unwrap().remove(0);
    let ib = s.load(&d.path().join("b.tar")).unwrap().remove(0);
    assert_eq!(s.list().unwrap().len(), 2);

    assert_eq!(s.remove("a:1").unwrap()[0].familiar(), "a:1");
    assert!(s.root(&ia).is_dir(), "a:2 still names it");
    s.remove("a:2").unwrap();
    assert!(!s.root(&ia).exists());
    assert!(!s.blob_path(&ia.id).exists());
    assert!(
        s.blob_path(&ib.layers[0]).exists(),
        "b's layer is shared and stays"
    );

    fs::write(d.path().join("a.tar"), a.docker_save(&["a:1"])).unwrap();
    let ia = s.load(&d.path().join("a.tar")).unwrap().remove(0);
    let removed = s.prune(&HashSet::from([ib.id.clone()])).unwrap();
    assert_eq!(removed, std::slice::from_ref(&ia.id));
    assert!(s.root(&ib).is_dir());
    assert!(!s.root(&ia).exists());
    assert_eq!(s.list().unwrap().len(), 1);
}

#[test]
fn unnamed_images_are_kept_and_found_by_id() {
    let (d, s) = store();
    let fx = Fixture::sample();
    fs::write(d.path().join("none.tar"), fx.docker_save(&[])).unwrap();
    let img = s.load(&d.path().join("none.tar")).unwrap().remove(0);
    assert!(img.references.is_empty());
    assert_eq!(s.list().unwrap(), std::slice::from_ref(&img));
    assert_eq!(s.inspect(img.id.as_str()).unwrap(), img);
    assert!(s.root(&img).is_dir());
    assert!(s.remove(img.id.as_str()).unwrap().is_empty());
    assert!(s.list().unwrap().is_empty());
    assert!(!s.root(&img).exists());
}

#[test]
fn open_clears_interrupted_work() {
    let (_d, s) = store();
    fs::create_dir_all(s.dir().join("roots/.tmp-abc/bin")).unwrap();
    fs::write(s.dir().join("tmp/partial"), b"x").unwrap();
    let s = Store::open(s.dir()).unwrap();
    assert!(!s.dir().join("roots/.tmp-abc").exists());
    assert!(!s.dir().join("tmp/partial").exists());
}

#[test]
fn garbage_archives_are_typed_errors() {
    let (d, s) = store();
    let p = d.path().join("junk.tar");
    fs::write(&p, vec![0x55u8; 4096]).unwrap();
    assert!(matches!(s.load(&p), Err(StoreError::Invalid { .. })));
    // An escaping path inside a `docker save` archive is simply not extracted.
    let evil = crate::testutil::tar(&[crate::testutil::E::File("../evil", b"x", 0o644)]);
    fs::write(&p, evil).unwrap();
    assert!(s.load(&p).is_err());
    assert!(!d.path().join("evil").exists());
    assert!(!s.dir().join("evil").exists());
}

#[test]
fn an_images_healthcheck_is_read_from_its_config() {
    let f: ConfigFile = serde_json::from_str(
        r#"{"config":{"Cmd":["nginx"],"Healthcheck":{"Test":["CMD-SHELL","curl -f http://localhost/ || exit 1"],"Interval":5000000000,"Timeout":3000000000,"StartPeriod":0,"Retries":4}}}"#,
    )
    .unwrap();
    let c = ImageConfig::from(f);
    assert_eq!(
        c.healthcheck,
        Some(Healthcheck {
            test: Some(vec![
                "CMD-SHELL".into(),
                "curl -f http://localhost/ || exit 1".into()
            ]),
            interval: Some(5_000_000_000),
            timeout: Some(3_000_000_000),
            start_period: Some(0),
            retries: Some(4),
        })
    );
    let none: ConfigFile = serde_json::from_str(r#"{"config":{"Cmd":["sh"]}}"#).unwrap();
    assert_eq!(ImageConfig::from(none).healthcheck, None);
}
