//! The result table: every row's spread over several runs (min / median /
//! max), the references measured in the same run beside it, and the ratio of
//! the medians. A reference that could not be measured says why in its cell;
//! it never stops the run.

use std::time::Duration;

/// What a figure counts; says how to print it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Ms,
    Secs,
    PerSec,
    Mb,
    Percent,
}

/// One figure measured once per run.
pub struct Spread {
    unit: Unit,
    values: Vec<f64>,
    /// Why some or all runs gave no figure.
    failed: Option<String>,
}

impl Spread {
    pub fn new(unit: Unit) -> Spread {
        Spread {
            unit,
            values: Vec::new(),
            failed: None,
        }
    }

    pub fn push(&mut self, value: f64) {
        self.values.push(value);
    }

    pub fn push_ms(&mut self, d: Duration) {
        self.push(d.as_secs_f64() * 1000.0);
    }

    /// Records one run's outcome: its figure, or why it gave none.
    pub fn record(&mut self, run: Result<f64, String>) {
        match run {
            Ok(v) => self.push(v),
            Err(e) => self.failed = Some(e),
        }
    }

    pub fn median(&self) -> Option<f64> {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(v[n / 2]),
            _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }

    /// This figure divided by `other`'s. When both were measured in every
    /// run, the median of the per-run ratios: each run measures mesync and
    /// its references back to back, so a slow moment of the disk or the
    /// CPU falls on both and cancels out. Otherwise the ratio of the medians.
    pub fn ratio_to(&self, other: &Spread) -> Option<f64> {
        if self.values.len() == other.values.len()
            && self.failed.is_none()
            && other.failed.is_none()
        {
            let mut per_run = Spread::new(self.unit);
            for (a, b) in self.values.iter().zip(&other.values) {
                if *b > 0.0 {
                    per_run.push(a / b);
                }
            }
            return per_run.median();
        }
        match (self.median(), other.median()) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        }
    }

    fn show(&self) -> String {
        let (Some(min), Some(mid), Some(max)) = (
            self.values.iter().copied().reduce(f64::min),
            self.median(),
            self.values.iter().copied().reduce(f64::max),
        ) else {
            let why = self.failed.as_deref().unwrap_or("no run finished");
            return format!("not measured: {why}");
        };
        let unit = self.unit;
        let mut out = if self.values.len() == 1 {
            value(unit, mid)
        } else {
            format!(
                "{} / {} / {}",
                value(unit, min),
                value(unit, mid),
                value(unit, max)
            )
        };
        if let Some(why) = &self.failed {
            out.push_str(&format!(" ({} runs only: {why})", self.values.len()));
        }
        out
    }
}

fn value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Ms => format!("{v:.2} ms"),
        Unit::Secs => format!("{v:.2} s"),
        Unit::PerSec => format!("{}/s", thousands(v)),
        Unit::Mb => format!("{v:.1} MB"),
        Unit::Percent => format!("{v:.2} %"),
    }
}

/// `1234567.8` as `1,234,568`.
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// What mesync's figure is measured against, in the same run.
pub struct Reference {
    pub name: &'static str,
    pub figure: Spread,
}

/// What a row shows in mesync's column.
pub enum Figure {
    Spread(Spread),
    /// A figure that is not a number over runs (a sizing note, `ldd`).
    Text(String),
}

pub struct Row {
    pub what: String,
    pub target: String,
    pub mesync: Figure,
    pub references: Vec<Reference>,
    /// Whether the target is met; `None` when the row has no target or the
    /// run was too small to judge it (`--quick`).
    pub met: Option<bool>,
}

impl Row {
    /// A row without references.
    pub fn alone(what: &str, target: &str, mesync: Figure, met: Option<bool>) -> Row {
        Row {
            what: what.to_string(),
            target: target.to_string(),
            mesync,
            references: Vec::new(),
            met,
        }
    }
}

/// Prints the rows as one Markdown table; a row with several references
/// takes one line per reference.
pub fn print_table(rows: &[Row]) {
    println!();
    println!("| what | target | mesync: min / median / max | reference | reference: min / median / max | mesync ÷ ref | met |");
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**NO**",
            None => "-",
        };
        let mesync = match &r.mesync {
            Figure::Spread(s) => s.show(),
            Figure::Text(t) => t.clone(),
        };
        let Some((first, rest)) = r.references.split_first() else {
            println!(
                "| {} | {} | {mesync} | - | - | - | {met} |",
                r.what, r.target
            );
            continue;
        };
        let ratio = |reference: &Reference| match &r.mesync {
            Figure::Spread(m) => m
                .ratio_to(&reference.figure)
                .map_or("-".to_string(), |x| format!("{x:.2}")),
            Figure::Text(_) => "-".to_string(),
        };
        println!(
            "| {} | {} | {mesync} | {} | {} | {} | {met} |",
            r.what,
            r.target,
            first.name,
            first.figure.show(),
            ratio(first)
        );
        for reference in rest {
            println!(
                "| | | | {} | {} | {} | |",
                reference.name,
                reference.figure.show(),
                ratio(reference)
            );
        }
    }
}

/// The `p`-th percentile (0..=100) of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
