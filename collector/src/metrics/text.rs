//! The Prometheus text exposition format (version 0.0.4), written straight into a `String`.
//!
//! Figure series are rebuilt from one [`crate::figures::Figures`] on every scrape: tens of
//! thousands of them for a country-sized tree. Going through the prometheus crate's registry meant
//! hashing every label set into a map, then walking and sorting the maps to encode them; writing
//! the lines directly does only the formatting.

use std::fmt::Write;

/// An exposition being written: families one after the other, each family's samples together.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    out: String,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
}

/// One metric family; its `# HELP` and `# TYPE` lines are written with its first sample, so a
/// family without samples leaves no trace (as with the registry's encoder).
#[derive(Debug)]
pub(crate) struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
    help: &'static str,
    kind: Kind,
    started: bool,
}

impl Exposition {
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Self {
            out: String::with_capacity(bytes),
        }
    }

    pub(crate) fn gauge(&mut self, name: &'static str, help: &'static str) -> Family<'_> {
        self.family(name, help, Kind::Gauge)
    }

    /// A counter family: `name` ends in `_total`.
    pub(crate) fn counter(&mut self, name: &'static str, help: &'static str) -> Family<'_> {
        debug_assert!(name.ends_with("_total"), "{name}");
        self.family(name, help, Kind::Counter)
    }

    fn family(&mut self, name: &'static str, help: &'static str, kind: Kind) -> Family<'_> {
        Family {
            out: &mut self.out,
            name,
            help,
            kind,
            started: false,
        }
    }

    /// Appends an already encoded exposition (the registry of event counters).
    pub(crate) fn push_encoded(&mut self, text: &str) {
        self.out.push_str(text);
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

impl Family<'_> {
    /// One sample; `labels` in the order they should appear.
    pub(crate) fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        if !self.started {
            self.started = true;
            self.out.push_str("# HELP ");
            self.out.push_str(self.name);
            self.out.push(' ');
            escape(self.out, self.help, false);
            self.out.push_str("\n# TYPE ");
            self.out.push_str(self.name);
            self.out.push_str(match self.kind {
                Kind::Gauge => " gauge\n",
                Kind::Counter => " counter\n",
            });
        }
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(name);
                self.out.push_str("=\"");
                escape(self.out, value, true);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        number(self.out, value);
        self.out.push('\n');
    }
}

/// Label values escape `\`, `"` and line feeds; help texts only `\` and line feeds.
fn escape(out: &mut String, text: &str, quote: bool) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn number(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        // Rust prints the shortest text that reads back as the same f64, and whole numbers
        // without a fraction: `1`, `0.25`, `8246337536`.
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escapes() {
        let mut x = Exposition::default();
        let mut g = x.gauge("hatang_x", "Help with \\ and\nbreak \"quoted\".");
        g.sample(&[("unit", "a\"b\\c\nd"), ("level", "xã")], 0.25);
        g.sample(&[], 1.0);
        x.gauge("hatang_empty", "Never sampled.");
        let mut c = x.counter("hatang_y_total", "Counter.");
        c.sample(&[("k", "v")], 8_246_337_536.0);
        c.sample(&[("k", "w")], f64::INFINITY);
        c.sample(&[("k", "z")], f64::NAN);
        assert_eq!(
            x.finish(),
            "# HELP hatang_x Help with \\\\ and\\nbreak \"quoted\".\n\
             # TYPE hatang_x gauge\n\
             hatang_x{unit=\"a\\\"b\\\\c\\nd\",level=\"xã\"} 0.25\n\
             hatang_x 1\n\
             # HELP hatang_y_total Counter.\n\
             # TYPE hatang_y_total counter\n\
             hatang_y_total{k=\"v\"} 8246337536\n\
             hatang_y_total{k=\"w\"} +Inf\n\
             hatang_y_total{k=\"z\"} NaN\n"
        );
    }
}
