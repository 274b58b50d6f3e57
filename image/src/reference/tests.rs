//! Cases from distribution/reference's `normalize_test.go` and `reference_test.go`, re-stated
//! as tables.

use super::*;

const D: &str = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";

#[test]
fn valid_repository_names() {
    for name in [
        "docker/docker",
        "library/debian",
        "debian",
        "docker.io/docker/docker",
        "docker.io/library/debian",
        "docker.io/debian",
        "index.docker.io/docker/docker",
        "index.docker.io/library/debian",
        "index.docker.io/debian",
        "127.0.0.1:5000/docker/docker",
        "127.0.0.1:5000/library/debian",
        "127.0.0.1:5000/debian",
        "192.168.0.1",
        "192.168.0.1:80",
        "192.168.0.1:8/debian",
        "192.168.0.2:25000/debian",
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "[fc00::1]:5000/docker",
        "[fc00::1]:5000/docker/docker",
        "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
        "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "Docker/docker",
        "DOCKER/docker",
        "docker-rules/docker",
        "docker---rules/docker",
        "doc/docker",
        "d/docker",
        "jess/t",
        "dock__er/docker",
        "localhost/x",
        "localhost:5000/a/b:tag",
        "host:5000/a/b:tag",
    ] {
        if let Err(e) = Reference::parse(name) {
            panic!("{name}: {e}");
        }
    }
}

#[test]
fn invalid_repository_names() {
    let long = format!("{}/docker", "a_".repeat(130) + "a");
    for name in [
        "https://github.com/docker/docker",
        "docker/Docker",
        "-docker",
        "-docker/docker",
        "-docker.io/docker/docker",
        "docker///docker",
        "docker.io/docker/Docker",
        "docker.io/docker///docker",
        "[fc00::1]",
        "[fc00::1]:5000",
        "fc00::1:5000/debian",
        "[fe80::1%eth0]:5000/debian",
        "[2001:db8:3:4::192.0.2.33]:5000/debian",
        "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "docker-/docker",
        "-docker-/docker",
        "____/____",
        "_docker/_docker",
        "dock..er/docker",
        "dock_.er/docker",
        "dock-.er/docker",
        "docker/",
        "",
        ":justtag",
        "@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "validname@invaliddigest:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "a:-tag",
        "foo@sha256:ffff",
        "a@b@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        &long,
    ] {
        assert!(
            Reference::parse(name).is_err(),
            "{name:?} should be refused"
        );
    }
}

#[test]
fn errors_use_dockers_words() {
    let e = |s: &str| Reference::parse(s).unwrap_err().to_string();
    assert_eq!(
        e("docker/Docker"),
        "invalid reference format: repository name (docker/Docker) must be lowercase"
    );
    assert_eq!(e("-docker"), "invalid reference format");
    assert_eq!(e(""), "repository name must have at least one component");
    assert_eq!(
        e("1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"),
        "invalid repository name (1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a), cannot specify 64-byte hexadecimal strings"
    );
    let long = format!("{}/{}", "a".repeat(128), "a".repeat(127));
    assert_eq!(
        e(&long),
        "repository name must not be more than 255 characters"
    );
    assert_eq!(
        e(&format!("a@sha512:{}", "f".repeat(128))),
        "unsupported digest algorithm"
    );
    assert_eq!(
        e(&format!("a@sha256:{}", "f".repeat(65))),
        "invalid checksum digest length"
    );
    assert_eq!(
        e(&format!("a:{}", "t".repeat(129))),
        "invalid reference format"
    );
}

/// (input, full, familiar, domain, path)
#[test]
fn normalization_table() {
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        (
            "nginx",
            "docker.io/library/nginx:latest",
            "nginx:latest",
            "docker.io",
            "library/nginx",
        ),
        (
            "nginx:alpine",
            "docker.io/library/nginx:alpine",
            "nginx:alpine",
            "docker.io",
            "library/nginx",
        ),
        (
            "fooo/bar",
            "docker.io/fooo/bar:latest",
            "fooo/bar:latest",
            "docker.io",
            "fooo/bar",
        ),
        (
            "index.docker.io/fooo/bar",
            "docker.io/fooo/bar:latest",
            "fooo/bar:latest",
            "docker.io",
            "fooo/bar",
        ),
        (
            "library/ubuntu",
            "docker.io/library/ubuntu:latest",
            "ubuntu:latest",
            "docker.io",
            "library/ubuntu",
        ),
        (
            "docker.io/foo",
            "docker.io/library/foo:latest",
            "foo:latest",
            "docker.io",
            "library/foo",
        ),
        (
            "other/library",
            "docker.io/other/library:latest",
            "other/library:latest",
            "docker.io",
            "other/library",
        ),
        (
            "127.0.0.1:8000/private/moonbase",
            "127.0.0.1:8000/private/moonbase:latest",
            "127.0.0.1:8000/private/moonbase:latest",
            "127.0.0.1:8000",
            "private/moonbase",
        ),
        (
            "127.0.0.1:8000/privatebase",
            "127.0.0.1:8000/privatebase:latest",
            "127.0.0.1:8000/privatebase:latest",
            "127.0.0.1:8000",
            "privatebase",
        ),
        (
            "example.com:8000/private/moonbase",
            "example.com:8000/private/moonbase:latest",
            "example.com:8000/private/moonbase:latest",
            "example.com:8000",
            "private/moonbase",
        ),
        (
            "ubuntu-12.04-base",
            "docker.io/library/ubuntu-12.04-base:latest",
            "ubuntu-12.04-base:latest",
            "docker.io",
            "library/ubuntu-12.04-base",
        ),
        (
            "library/foo/bar",
            "docker.io/library/foo/bar:latest",
            "library/foo/bar:latest",
            "docker.io",
            "library/foo/bar",
        ),
        (
            "store/foo/bar",
            "docker.io/store/foo/bar:latest",
            "store/foo/bar:latest",
            "docker.io",
            "store/foo/bar",
        ),
        ("Foo/bar", "Foo/bar:latest", "Foo/bar:latest", "Foo", "bar"),
        ("FOO/bar", "FOO/bar:latest", "FOO/bar:latest", "FOO", "bar"),
        (
            "test_com/foo",
            "docker.io/test_com/foo:latest",
            "test_com/foo:latest",
            "docker.io",
            "test_com/foo",
        ),
        (
            "test-com:8080/foo",
            "test-com:8080/foo:latest",
            "test-com:8080/foo:latest",
            "test-com:8080",
            "foo",
        ),
        (
            "xn--n3h.com:18080/foo",
            "xn--n3h.com:18080/foo:latest",
            "xn--n3h.com:18080/foo:latest",
            "xn--n3h.com:18080",
            "foo",
        ),
        (
            "localhost/x",
            "localhost/x:latest",
            "localhost/x:latest",
            "localhost",
            "x",
        ),
        (
            "localhost:5000",
            "docker.io/library/localhost:5000",
            "localhost:5000",
            "docker.io",
            "library/localhost",
        ),
        (
            "192.168.0.1",
            "docker.io/library/192.168.0.1:latest",
            "192.168.0.1:latest",
            "docker.io",
            "library/192.168.0.1",
        ),
        (
            "[fc00::1]:5000/docker",
            "[fc00::1]:5000/docker:latest",
            "[fc00::1]:5000/docker:latest",
            "[fc00::1]:5000",
            "docker",
        ),
        (
            "dbcc1",
            "docker.io/library/dbcc1:latest",
            "dbcc1:latest",
            "docker.io",
            "library/dbcc1",
        ),
    ];
    for (input, full, familiar, domain, path) in cases {
        let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.to_string(), *full, "{input}");
        assert_eq!(r.familiar(), *familiar, "{input}");
        assert_eq!(r.domain(), *domain, "{input}");
        assert_eq!(r.path(), *path, "{input}");
    }
}

/// Found by the fuzz target: Docker's familiar form of `docker.io/r.io/x` is `r.io/x`, which
/// reads back as registry `r.io`. Kept identical to Docker (which has the same ambiguity).
#[test]
fn familiar_form_of_a_dotted_hub_namespace_is_ambiguous_as_in_docker() {
    let r = Reference::parse("docker.io/r.io/x").unwrap();
    assert_eq!(r.to_string(), "docker.io/r.io/x:latest");
    assert_eq!(r.familiar(), "r.io/x:latest");
    assert_eq!(Reference::parse(&r.familiar()).unwrap().domain(), "r.io");
}

#[test]
fn digests_with_and_without_tag() {
    let r = Reference::parse(&format!("redis@{D}")).unwrap();
    assert_eq!(r.to_string(), format!("docker.io/library/redis@{D}"));
    assert_eq!(r.tag(), None);
    assert_eq!(r.digest().unwrap().as_str(), D);
    assert_eq!(r.familiar(), format!("redis@{D}"));

    let short = format!("busybox:latest@{D}");
    let r = Reference::parse(&short).unwrap();
    assert_eq!(r.to_string(), format!("docker.io/library/{short}"));
    assert_eq!(r.familiar(), short);
    assert_eq!(r.tag(), Some("latest"));

    let r = Reference::parse(&format!("host:5000/a/b:tag@{D}")).unwrap();
    assert_eq!(
        (r.domain(), r.path(), r.tag()),
        ("host:5000", "a/b", Some("tag"))
    );
    let pinned = Reference::parse("nginx")
        .unwrap()
        .with_digest(D.parse().unwrap());
    assert_eq!(pinned.familiar(), format!("nginx:latest@{D}"));
}

#[test]
fn tags_follow_the_tag_grammar() {
    for ok in ["a:1", "a:_x", "a:X.y-z", &format!("a:{}", "t".repeat(128))] {
        assert!(Reference::parse(ok).is_ok(), "{ok}");
    }
    for bad in ["a:.x", "a:-x", "a:x/y", "a:x y"] {
        assert!(Reference::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn serde_round_trips_the_full_form() {
    let r = Reference::parse("user/img:1").unwrap();
    let j = serde_json::to_string(&r).unwrap();
    assert_eq!(j, "\"docker.io/user/img:1\"");
    assert_eq!(serde_json::from_str::<Reference>(&j).unwrap(), r);
}

/// Bounded randomized input (the cargo-fuzz target `reference` runs the same property for
/// longer): strings over the grammar's alphabet never panic, and an accepted one round-trips
/// through its full and familiar forms.
#[test]
fn random_strings_round_trip() {
    const ALPHABET: &[u8] = b"aZ09._-/:@[]ls hx";
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut accepted = 0;
    for _ in 0..20_000 {
        let len = (next() % 24) as usize;
        let mut s: String = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char)
            .collect();
        if next() % 4 == 0 {
            s.push_str(&format!("@sha256:{}", "ab".repeat(32)));
        }
        if let Ok(r) = Reference::parse(&s) {
            accepted += 1;
            assert_eq!(Reference::parse(&r.to_string()).as_ref(), Ok(&r), "{s:?}");
            let first = r.path().split('/').next().unwrap_or("");
            if !(r.domain() == DEFAULT_DOMAIN
                && (first.contains(['.', ':']) || first == "localhost"))
            {
                assert_eq!(Reference::parse(&r.familiar()).as_ref(), Ok(&r), "{s:?}");
            }
        }
    }
    assert!(
        accepted > 100,
        "the generator should hit valid references too ({accepted})"
    );
}
