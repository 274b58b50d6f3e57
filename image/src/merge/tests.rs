//! The merge rules and user resolution, table-driven.

use super::*;

fn v(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

fn image() -> ImageConfig {
    ImageConfig {
        entrypoint: v(&["/docker-entrypoint.sh"]),
        cmd: v(&["nginx", "-g", "daemon off;"]),
        env: v(&["PATH=/usr/sbin:/usr/bin", "NGINX_VERSION=1.25"]),
        working_dir: String::new(),
        user: String::new(),
        ..Default::default()
    }
}

/// (name, image, overrides, args, cwd, user)
type Case<'a> = (
    &'a str,
    &'a ImageConfig,
    Overrides,
    Vec<String>,
    &'a str,
    &'a str,
);

#[test]
fn merge_table() {
    let img = image();
    let bare = ImageConfig {
        cmd: v(&["sh"]),
        ..Default::default()
    };
    let app = ImageConfig {
        working_dir: "/app".into(),
        user: "1000".into(),
        ..bare.clone()
    };
    let u1000 = ImageConfig {
        user: "1000".into(),
        ..bare.clone()
    };
    // (name, image, overrides, args, cwd, user)
    let cases: Vec<Case<'_>> = vec![
        (
            "image defaults",
            &img,
            Overrides::default(),
            v(&["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]),
            "/",
            "0",
        ),
        (
            "args replace cmd",
            &img,
            Overrides {
                args: v(&["nginx", "-t"]),
                ..Default::default()
            },
            v(&["/docker-entrypoint.sh", "nginx", "-t"]),
            "/",
            "0",
        ),
        (
            "entrypoint drops cmd",
            &img,
            Overrides {
                entrypoint: Some(v(&["/bin/sh"])),
                ..Default::default()
            },
            v(&["/bin/sh"]),
            "/",
            "0",
        ),
        (
            "entrypoint with args",
            &img,
            Overrides {
                entrypoint: Some(v(&["/bin/sh"])),
                args: v(&["-c", "id"]),
                ..Default::default()
            },
            v(&["/bin/sh", "-c", "id"]),
            "/",
            "0",
        ),
        (
            "empty entrypoint override",
            &img,
            Overrides {
                entrypoint: Some(vec![]),
                args: v(&["id"]),
                ..Default::default()
            },
            v(&["id"]),
            "/",
            "0",
        ),
        (
            "no entrypoint image",
            &bare,
            Overrides {
                args: v(&["ls", "/"]),
                ..Default::default()
            },
            v(&["ls", "/"]),
            "/",
            "0",
        ),
        (
            "workdir and user",
            &img,
            Overrides {
                workdir: Some("/srv".into()),
                user: Some("www:www".into()),
                ..Default::default()
            },
            v(&["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]),
            "/srv",
            "www:www",
        ),
        (
            "image workdir and user",
            &app,
            Overrides::default(),
            v(&["sh"]),
            "/app",
            "1000",
        ),
        (
            "service user wins",
            &u1000,
            Overrides {
                user: Some("root".into()),
                ..Default::default()
            },
            v(&["sh"]),
            "/",
            "root",
        ),
    ];
    for (name, img, over, args, cwd, user) in cases {
        let p = merge(img, &over).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.args, args, "{name}");
        assert_eq!(p.cwd, cwd, "{name}");
        assert_eq!(p.user, user, "{name}");
    }
}

#[test]
fn merge_errors() {
    let none = ImageConfig::default();
    assert_eq!(
        merge(&none, &Overrides::default()),
        Err(MergeError::NoCommand)
    );
    let img = image();
    let e = merge(
        &img,
        &Overrides {
            workdir: Some("rel".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the working directory 'rel' is invalid, it needs to be an absolute path"
    );
}

#[test]
fn env_table() {
    let cases: &[(&[&str], &[&str], &[&str])] = &[
        (
            &["PATH=/x", "A=1"],
            &["A=2", "B=3"],
            &["PATH=/x", "A=2", "B=3"],
        ),
        (
            &["A=1"],
            &[],
            &[
                "A=1",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ],
        ),
        (&[], &["PATH=/svc"], &["PATH=/svc"]),
        (
            &["A=1", "A=2"],
            &["C"],
            &[
                "A=2",
                "C",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ],
        ),
        (
            &["A=x=y"],
            &["A=z=w"],
            &[
                "A=z=w",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ],
        ),
    ];
    for (img, svc, want) in cases {
        assert_eq!(merge_env(&v(img), &v(svc)), v(want), "{img:?} + {svc:?}");
    }
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\nnobody:x:65534:65534::/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nwww:x:33:\nextra:x:50:www,other\nstaff:x:60:www\n";

#[test]
fn user_table() {
    // (spec, uid, gid, additional, home)
    let cases: &[(&str, u32, u32, &[u32], &str)] = &[
        ("", 0, 0, &[], "/root"),
        ("0", 0, 0, &[], "/root"),
        ("root", 0, 0, &[], "/root"),
        ("www", 33, 33, &[50, 60], "/var/www"),
        ("33", 33, 33, &[50, 60], "/var/www"),
        ("www:extra", 33, 50, &[], "/var/www"),
        ("www:60", 33, 60, &[], "/var/www"),
        ("1234", 1234, 0, &[], "/"),
        ("1234:5678", 1234, 5678, &[], "/"),
        ("nobody:www", 65534, 33, &[], "/nonexistent"),
    ];
    for (spec, uid, gid, extra, home) in cases {
        let u =
            resolve_user(spec, Some(PASSWD), Some(GROUP)).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.as_slice(), u.home.as_str()),
            (*uid, *gid, *extra, *home),
            "{spec}"
        );
    }
}

#[test]
fn user_errors_use_dockers_words() {
    let e = resolve_user("x", Some(PASSWD), Some(GROUP)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unable to find user x: no matching entries in passwd file"
    );
    let e = resolve_user("www:nogroup", Some(PASSWD), Some(GROUP)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unable to find group nogroup: no matching entries in group file"
    );
    // A scratch image (no passwd): names fail, numbers work.
    assert!(matches!(
        resolve_user("www", None, None),
        Err(UserError::NoUser(_))
    ));
    assert_eq!(resolve_user("1000:1000", None, None).unwrap().gid, 1000);
}

#[test]
fn passwd_behind_a_symlink_is_not_read_from_the_host() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("etc/passwd")).unwrap();
    // The host's passwd has root; the image's (absent) does not: the name must fail.
    assert!(matches!(
        resolve_user_in_root(dir.path(), "root"),
        Err(UserError::NoUser(_))
    ));
    std::fs::remove_file(dir.path().join("etc/passwd")).unwrap();
    std::fs::write(dir.path().join("etc/passwd"), PASSWD).unwrap();
    assert_eq!(resolve_user_in_root(dir.path(), "www").unwrap().uid, 33);
}
