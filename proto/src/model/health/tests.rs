use super::*;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn docker_test_forms_round_trip() {
    let cases = [
        (s(&[]), HealthTest::Inherit),
        (s(&["NONE"]), HealthTest::None),
        (
            s(&["CMD", "curl", "-f", "http://localhost/"]),
            HealthTest::Cmd(s(&["curl", "-f", "http://localhost/"])),
        ),
        (
            s(&["CMD-SHELL", "test -e /ok"]),
            HealthTest::Shell("test -e /ok".into()),
        ),
    ];
    for (docker, model) in cases {
        assert_eq!(HealthTest::from_docker(&docker).unwrap(), model);
        assert_eq!(model.to_docker(), docker);
    }
}

#[test]
fn bad_docker_tests_are_refused() {
    for bad in [
        s(&["NONE", "x"]),
        s(&["CMD"]),
        s(&["CMD", " "]),
        s(&["CMD-SHELL"]),
        s(&["CMD-SHELL", ""]),
        s(&["CMD-SHELL", "a", "b"]),
        s(&["curl", "-f"]),
    ] {
        let e = HealthTest::from_docker(&bad).unwrap_err();
        assert!(matches!(e, Invalid::Health(_)), "{bad:?}: {e}");
    }
}

#[test]
fn validation_bounds() {
    let ok = HealthConfig {
        test: HealthTest::Shell("true".into()),
        interval_ms: 1,
        timeout_ms: 24 * 3600 * 1000,
        start_period_ms: 0,
        retries: MAX_RETRIES,
    };
    assert_eq!(ok.validate(), Ok(()));
    let cases: Vec<(HealthConfig, &str)> = vec![
        (
            HealthConfig {
                interval_ms: 24 * 3600 * 1000 + 1,
                ..ok.clone()
            },
            "--health-interval",
        ),
        (
            HealthConfig {
                timeout_ms: 25 * 3600 * 1000,
                ..ok.clone()
            },
            "--health-timeout",
        ),
        (
            HealthConfig {
                start_period_ms: u64::MAX,
                ..ok.clone()
            },
            "--health-start-period",
        ),
        (
            HealthConfig {
                retries: MAX_RETRIES + 1,
                ..ok.clone()
            },
            "--health-retries",
        ),
        (
            HealthConfig {
                test: HealthTest::Shell("  ".into()),
                ..ok.clone()
            },
            "--health-cmd",
        ),
        (
            HealthConfig {
                test: HealthTest::Cmd(vec![]),
                ..ok.clone()
            },
            "no program",
        ),
    ];
    for (c, needle) in cases {
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(needle), "{c:?}: {e}");
    }
}

#[test]
fn probe_merges_service_image_and_defaults() {
    // No check anywhere.
    assert_eq!(HealthConfig::probe(None, None), None);
    // The service's shell command with Docker's defaults.
    let svc = HealthConfig {
        test: HealthTest::Shell("test -e /ok".into()),
        ..Default::default()
    };
    let p = HealthConfig::probe(Some(&svc), None).unwrap();
    assert_eq!(p.argv, s(&["/bin/sh", "-c", "test -e /ok"]));
    assert_eq!(
        (p.interval, p.timeout, p.start_period, p.retries),
        (DEFAULT_INTERVAL, DEFAULT_TIMEOUT, Duration::ZERO, 3)
    );
    // The image's check, its timings winning over the defaults and the service's non-zero
    // timings over the image's.
    let image = HealthConfig {
        test: HealthTest::Cmd(s(&["/bin/check"])),
        interval_ms: 5000,
        timeout_ms: 2000,
        start_period_ms: 1000,
        retries: 5,
    };
    let p = HealthConfig::probe(None, Some(&image)).unwrap();
    assert_eq!(p.argv, s(&["/bin/check"]));
    assert_eq!(p.interval, Duration::from_secs(5));
    let only_timing = HealthConfig {
        interval_ms: 100,
        ..Default::default()
    };
    let p = HealthConfig::probe(Some(&only_timing), Some(&image)).unwrap();
    assert_eq!(
        (p.argv.clone(), p.interval, p.timeout, p.retries),
        (
            s(&["/bin/check"]),
            Duration::from_millis(100),
            Duration::from_secs(2),
            5
        )
    );
    // Timings alone and no image check: nothing to run.
    assert_eq!(HealthConfig::probe(Some(&only_timing), None), None);
    // --no-healthcheck disables the image's.
    let none = HealthConfig {
        test: HealthTest::None,
        ..Default::default()
    };
    assert_eq!(HealthConfig::probe(Some(&none), Some(&image)), None);
    // The image says NONE, the service has its own command.
    let image_none = HealthConfig {
        test: HealthTest::None,
        ..Default::default()
    };
    assert!(HealthConfig::probe(Some(&svc), Some(&image_none)).is_some());
}

#[test]
fn durations_print_as_docker() {
    for (ms, want) in [
        (0, "0s"),
        (500, "500ms"),
        (1500, "1.5s"),
        (30_000, "30s"),
        (90_000, "1m30s"),
        (3_600_000, "1h"),
        (3_660_000, "1h1m"),
    ] {
        assert_eq!(fmt_ms(ms), want);
    }
}

#[test]
fn only_no_check_or_a_passing_one_serves() {
    assert!(TaskHealth::None.serves());
    assert!(TaskHealth::Healthy.serves());
    assert!(!TaskHealth::Starting.serves());
    assert!(!TaskHealth::Unhealthy.serves());
}
