//! `swarmctl image …`: parsing, what is printed, and whole commands against the fake.

use super::print::{self, LsOptions};
use super::*;
use crate::ctl::fake::Fake;
use crate::ctl::fake_images::{image, ARCHIVE_MAGIC};
use crate::ctl::tests::{ok, run_cmd};
use crate::ctl::Cli;
use clap::Parser;

#[test]
fn references_split_into_repository_tag_and_digest() {
    let d = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(split_reference("nginx:1"), s("nginx", "1", ""));
    assert_eq!(
        split_reference("shoal/busybox:1"),
        s("shoal/busybox", "1", "")
    );
    assert_eq!(
        split_reference("localhost:5000/app:v2"),
        s("localhost:5000/app", "v2", "")
    );
    assert_eq!(
        split_reference(&format!("localhost:5000/app@{d}")),
        s("localhost:5000/app", "<none>", d)
    );
    assert_eq!(split_reference(&format!("nginx:1@{d}")), s("nginx", "1", d));
}

#[test]
fn sizes_are_dockers() {
    assert_eq!(human_size(0), "0B");
    assert_eq!(human_size(999), "999B");
    assert_eq!(human_size(7_050), "7.05kB");
    assert_eq!(human_size(1_234_567), "1.23MB");
    assert_eq!(human_size(1_200_000), "1.2MB");
    assert_eq!(human_size(142_000_000), "142MB");
    assert_eq!(human_size(10_000_000_000), "10GB");
}

#[test]
fn verbs_and_flags_parse() {
    let parse = |args: &[&str]| {
        let mut argv = vec!["swarmctl", "image"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
    };
    assert!(parse(&["ls", "--node", "w1", "-q"]).is_ok());
    assert!(parse(&["pull", "shoal/busybox:1"]).is_ok());
    assert!(parse(&["pull"]).is_err(), "pull needs an image");
    assert!(parse(&["rm"]).is_err(), "rm needs an image");
    assert!(parse(&["rmi", "-f", "a", "b"]).is_ok());
    assert!(parse(&["prune", "-a"]).is_ok());
    assert!(
        parse(&["load", "-i", "x.tar"]).is_err(),
        "load needs --node"
    );
    assert!(parse(&["load", "--node", "w1", "-i", "x.tar"]).is_ok());
}

fn report() -> pb::ImageReport {
    let mut busybox = image("shoal/busybox:1", 1_234_567, &["web.1.abc"]);
    busybox.references.push("shoal/busybox:latest".into());
    let unnamed = pb::ImageSummary {
        references: vec![],
        ..image("x", 2_000, &[])
    };
    pb::ImageReport {
        nodes: vec![
            pb::ImageNodeReport {
                hostname: "worker1".into(),
                images: vec![busybox.clone(), unnamed],
                ..Default::default()
            },
            pb::ImageNodeReport {
                hostname: "manager1".into(),
                error: "the node is not connected to the managers; retry when it is Ready".into(),
                ..Default::default()
            },
        ],
    }
}

#[test]
fn ls_has_a_row_per_name_and_node_and_says_who_uses_it() {
    let r = report();
    let id = &image("shoal/busybox:1", 0, &[]).id[7..19];
    let none_id = &image("x", 0, &[]).id[7..19];
    let want = format!(
        "NODE      REPOSITORY      TAG       IMAGE ID       SIZE      IN USE BY\n\
         worker1   <none>          <none>    {none_id}   2kB       -\n\
         worker1   shoal/busybox   1         {id}   1.23MB    web.1.abc\n\
         worker1   shoal/busybox   latest    {id}   1.23MB    web.1.abc\n"
    );
    assert_eq!(print::ls(&r, LsOptions::default()), want);
    let quiet = print::ls(
        &r,
        LsOptions {
            quiet: true,
            ..Default::default()
        },
    );
    assert_eq!(quiet, format!("{id}\n{none_id}\n"), "each id once");
    let digests = print::ls(
        &r,
        LsOptions {
            digests: true,
            ..Default::default()
        },
    );
    assert!(digests.lines().next().unwrap().contains("DIGEST"));
    assert_eq!(
        print::errors(&r),
        vec!["manager1: the node is not connected to the managers; retry when it is Ready"]
    );
}

#[test]
fn prune_prints_what_went_and_the_space_reclaimed() {
    let r = pb::ImageReport {
        nodes: vec![pb::ImageNodeReport {
            hostname: "w1".into(),
            deleted: vec![
                pb::ImageDeleted {
                    untagged: "shoal/nginx:1".into(),
                    deleted: String::new(),
                },
                pb::ImageDeleted {
                    untagged: String::new(),
                    deleted: "sha256:abc".into(),
                },
            ],
            reclaimed: 12_300_000,
            ..Default::default()
        }],
    };
    assert_eq!(
        print::removed(&r, true),
        "Deleted Images:\nw1: untagged: shoal/nginx:1\nw1: deleted: sha256:abc\n\nTotal reclaimed space: 12.3MB\n"
    );
    assert_eq!(
        print::removed(&r, false),
        "w1: Untagged: shoal/nginx:1\nw1: Deleted: sha256:abc\n"
    );
    assert_eq!(
        print::removed(&pb::ImageReport::default(), true),
        "Total reclaimed space: 0B\n"
    );
}

#[test]
fn an_empty_input_still_names_the_node_and_chunks_are_bounded() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    read_chunks(&b""[..], "w1".into(), tx).unwrap();
    let first = rx.blocking_recv().unwrap();
    assert_eq!((first.node.as_str(), first.data.len()), ("w1", 0));
    assert!(rx.blocking_recv().is_none());

    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let data = vec![7u8; LOAD_CHUNK * 2 + 10];
    read_chunks(&data[..], "w1".into(), tx).unwrap();
    let mut got = Vec::new();
    let mut nodes = Vec::new();
    while let Some(c) = rx.blocking_recv() {
        assert!(c.data.len() <= LOAD_CHUNK);
        nodes.push(c.node);
        got.extend(c.data);
    }
    assert_eq!(got, data);
    assert_eq!(nodes[0], "w1");
    assert!(
        nodes[1..].iter().all(String::is_empty),
        "only the first names the node"
    );
}

fn fake_with_images() -> Fake {
    let f = Fake::with_nodes();
    {
        let mut s = f.lock();
        s.images.insert(
            "worker1".into(),
            vec![
                image("shoal/busybox:1", 1_000_000, &["web.1.abc"]),
                image("shoal/nginx:1", 2_000_000, &[]),
            ],
        );
        s.registry
            .insert("shoal/whoami:1".into(), "sha256:1".into());
    }
    f
}

#[tokio::test]
async fn ls_pull_rm_prune_against_the_fake() {
    let f = fake_with_images();
    let host = f.clone().serve_tcp().await;
    let out = ok(&host, &["image", "ls", "--node", "worker1"]).await;
    assert!(out.contains("worker1   shoal/busybox   1"), "{out}");
    assert!(!out.contains("manager1"), "{out}");

    let out = ok(&host, &["image", "pull", "shoal/whoami:1"]).await;
    assert!(
        out.contains("manager1: shoal/whoami:1: Pull complete"),
        "{out}"
    );
    assert!(
        out.contains("worker1: shoal/whoami:1: Pull complete"),
        "{out}"
    );
    let (r, _) = run_cmd(&host, &["image", "pull", "--node", "w", "nope:1"]).await;
    assert!(r.is_err(), "an unknown image fails the command");

    // In use: refused, the other name removed; the command fails.
    let (r, out) = run_cmd(
        &host,
        &[
            "image",
            "rm",
            "--node",
            "worker1",
            "shoal/busybox:1",
            "shoal/nginx:1",
        ],
    )
    .await;
    assert!(r.is_err());
    assert!(out.contains("worker1: Untagged: shoal/nginx:1"), "{out}");
    assert!(!out.contains("busybox"), "{out}");

    let out = ok(&host, &["image", "prune", "-a", "--node", "worker1"]).await;
    assert!(out.contains("worker1: untagged: shoal/whoami:1"), "{out}");
    assert!(out.ends_with("Total reclaimed space: 1.23MB\n"), "{out}");
    let left = f.lock().images["worker1"].clone();
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].references,
        vec!["shoal/busybox:1"],
        "the image in use stays"
    );

    let (r, _) = run_cmd(&host, &["image", "ls", "--node", "nosuchnode"]).await;
    assert!(r
        .unwrap_err()
        .to_string()
        .contains("node nosuchnode not found"));
}

#[tokio::test]
async fn load_streams_a_file_and_prints_the_loaded_names() {
    let f = fake_with_images();
    let host = f.clone().serve_tcp().await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.tar");
    let mut data = format!("{ARCHIVE_MAGIC}shoal/app:1\nshoal/app:2\n").into_bytes();
    data.resize(LOAD_CHUNK * 2 + 10, b'\n');
    std::fs::write(&good, &data).unwrap();
    let out = ok(
        &host,
        &[
            "image",
            "load",
            "--node",
            "worker1",
            "-i",
            good.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(
        out,
        "Loaded image: shoal/app:1\nLoaded image: shoal/app:2\n"
    );
    assert_eq!(f.lock().load_chunks, 3, "streamed in chunks");

    let bad = dir.path().join("bad.tar");
    std::fs::write(&bad, b"garbage").unwrap();
    let before = f.lock().images["worker1"].len();
    let (r, out) = run_cmd(
        &host,
        &[
            "image",
            "load",
            "--node",
            "worker1",
            "-i",
            bad.to_str().unwrap(),
        ],
    )
    .await;
    assert!(r.is_err());
    assert_eq!(out, "");
    assert_eq!(f.lock().images["worker1"].len(), before, "nothing loaded");

    let (r, _) = run_cmd(
        &host,
        &[
            "image",
            "load",
            "--node",
            "worker1",
            "-i",
            "/nonexistent/x.tar",
        ],
    )
    .await;
    assert!(r
        .unwrap_err()
        .to_string()
        .contains("open /nonexistent/x.tar"));
}

#[tokio::test]
async fn json_output_is_one_object_per_node() {
    let f = fake_with_images();
    let host = f.serve_tcp().await;
    let out = ok(&host, &["image", "ls", "--format", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let nodes = v.as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[1]["Node"], "worker1");
    assert_eq!(nodes[1]["Images"][0]["RepoTags"][0], "shoal/busybox:1");
    assert_eq!(nodes[1]["Images"][0]["UsedBy"][0], "web.1.abc");
}
