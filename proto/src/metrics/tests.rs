use super::*;

#[test]
fn label_values_are_escaped() {
    let mut e = Exposition::new();
    e.header(
        "shoal_x_total",
        "Help with a \\ and a\nnewline.",
        Kind::Counter,
    );
    e.sample(
        "shoal_x_total",
        &[("service", "a\"b\\c\nd"), ("state", "running")],
        3.0,
    );
    assert_eq!(
        e.finish(),
        "# HELP shoal_x_total Help with a \\\\ and a\\nnewline.\n\
         # TYPE shoal_x_total counter\n\
         shoal_x_total{service=\"a\\\"b\\\\c\\nd\",state=\"running\"} 3\n"
    );
}

#[test]
fn values_are_spelled_as_prometheus_does() {
    let mut e = Exposition::new();
    e.sample("a", &[], 1.0);
    e.sample("b", &[], 0.25);
    e.sample("c", &[], f64::INFINITY);
    e.sample("d", &[], f64::NAN);
    e.sample("e", &[], -3.0);
    assert_eq!(e.finish(), "a 1\nb 0.25\nc +Inf\nd NaN\ne -3\n");
}

static BOUNDS: &[f64] = &[0.1, 1.0, 10.0];

#[test]
fn histogram_buckets_are_cumulative_with_inf_sum_and_count() {
    let h = Histogram::new(BOUNDS);
    for v in [0.05, 0.1, 0.5, 5.0, 50.0] {
        h.observe(v);
    }
    let s = h.snapshot();
    assert_eq!(
        s.buckets,
        vec![(0.1, 2), (1.0, 3), (10.0, 4)],
        "le is inclusive"
    );
    assert_eq!(s.count, 5);
    assert!((s.sum - 55.65).abs() < 1e-9);
    let mut e = Exposition::new();
    e.header("shoal_t_seconds", "T.", Kind::Histogram);
    e.histogram("shoal_t_seconds", &[("kind", "a")], &s);
    let page = e.finish();
    let want = "# HELP shoal_t_seconds T.\n\
                # TYPE shoal_t_seconds histogram\n\
                shoal_t_seconds_bucket{kind=\"a\",le=\"0.1\"} 2\n\
                shoal_t_seconds_bucket{kind=\"a\",le=\"1\"} 3\n\
                shoal_t_seconds_bucket{kind=\"a\",le=\"10\"} 4\n\
                shoal_t_seconds_bucket{kind=\"a\",le=\"+Inf\"} 5\n";
    assert!(page.starts_with(want), "{page}");
    assert!(
        page.contains("shoal_t_seconds_sum{kind=\"a\"} 55.65"),
        "{page}"
    );
    assert!(
        page.ends_with("shoal_t_seconds_count{kind=\"a\"} 5\n"),
        "{page}"
    );
}

#[test]
fn empty_histogram_without_labels() {
    let h = Histogram::new(BOUNDS);
    h.observe_duration(Duration::from_millis(2500));
    let mut e = Exposition::new();
    e.histogram("h", &[], &h.snapshot());
    assert_eq!(
        e.finish(),
        "h_bucket{le=\"0.1\"} 0\nh_bucket{le=\"1\"} 0\nh_bucket{le=\"10\"} 1\n\
         h_bucket{le=\"+Inf\"} 1\nh_sum 2.5\nh_count 1\n"
    );
}

#[test]
fn counters_and_gauges() {
    let c = Counter::new();
    c.inc();
    c.add(4);
    assert_eq!(c.get(), 5);
    let g = Gauge::new();
    g.inc();
    g.inc();
    g.dec();
    assert_eq!(g.get(), 1);
    g.set(-7);
    assert_eq!(g.get(), -7);
}
