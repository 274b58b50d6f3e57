//! The Prometheus text exposition format, version 0.0.4: one `# HELP` and one `# TYPE` line per
//! family, then its samples, `name{label="value",…} value`. Label values escape `\`, `"` and
//! newlines; help text escapes `\` and newlines (the format's own rules,
//! <https://prometheus.io/docs/instrumenting/exposition_formats/#text-format-details>).

use super::HistogramSnapshot;
use std::fmt::Write;

/// A metric family's type, as the `# TYPE` line says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up; the name ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, `_sum` and `_count`.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A page of the text format being written. Write each family's [`header`](Self::header)
/// once, then its samples, before the next family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty page.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// The page.
    pub fn finish(self) -> String {
        self.out
    }

    /// `# HELP name help` and `# TYPE name kind`.
    pub fn header(&mut self, name: &str, help: &str, kind: Kind) {
        let _ = write!(self.out, "# HELP {name} ");
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        let _ = writeln!(self.out, "\n# TYPE {name} {}", kind.as_str());
    }

    /// One sample: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        self.labels(labels, None);
        self.out.push(' ');
        self.value(value);
        self.out.push('\n');
    }

    /// A family of one unlabelled counter.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, help, Kind::Counter);
        self.sample(name, &[], value as f64);
    }

    /// A family of one unlabelled gauge.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, help, Kind::Gauge);
        self.sample(name, &[], value);
    }

    /// The samples of one histogram (after its family's header): `name_bucket{…,le="…"}` for
    /// every bound and `+Inf`, then `name_sum` and `name_count`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        for (bound, n) in h
            .buckets
            .iter()
            .copied()
            .chain(std::iter::once((f64::INFINITY, h.count)))
        {
            let _ = write!(self.out, "{name}_bucket");
            let mut le = String::new();
            fmt_value(&mut le, bound);
            self.labels(labels, Some(&le));
            let _ = writeln!(self.out, " {n}");
        }
        let _ = write!(self.out, "{name}_sum");
        self.labels(labels, None);
        self.out.push(' ');
        self.value(h.sum);
        let _ = write!(self.out, "\n{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", h.count);
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let all = labels.iter().copied().chain(le.map(|v| ("le", v)));
        for (i, (k, v)) in all.enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(k);
            self.out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }

    fn value(&mut self, v: f64) {
        fmt_value(&mut self.out, v);
    }
}

/// A sample value as the format spells it: `+Inf`, `-Inf`, `NaN`, else Go-style decimal
/// (integers without a fraction).
fn fmt_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}
