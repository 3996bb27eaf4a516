//! Median and p95 of benchmark samples (benchmarks print numbers; tests never assert times).

/// Median (the upper one for an even count) and p95 (nearest rank) of `v`; `(0, 0)` when empty.
pub fn median_p95(v: &[f64]) -> (f64, f64) {
    let s = sorted(v);
    (at(&s, 0.5), at(&s, 0.95))
}

/// `n`, median, p95, min and max of `v` (ms) as JSON: `n`, `median_ms`, `p95_ms`, `min_ms`,
/// `max_ms`; NaN figures (JSON `null`) when empty.
pub fn summary_ms(v: &[f64]) -> serde_json::Value {
    let s = sorted(v);
    let pick = |x: f64| if s.is_empty() { f64::NAN } else { x };
    serde_json::json!({
        "n": s.len(),
        "median_ms": pick(at(&s, 0.5)),
        "p95_ms": pick(at(&s, 0.95)),
        "min_ms": pick(s.first().copied().unwrap_or(0.0)),
        "max_ms": pick(s.last().copied().unwrap_or(0.0)),
    })
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s
}

/// The median at `q == 0.5` (index `n / 2`), else the nearest rank `ceil(q n)`.
fn at(s: &[f64], q: f64) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let i = if q == 0.5 {
        s.len() / 2
    } else {
        ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1
    };
    s[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p95() {
        assert_eq!(median_p95(&[]), (0.0, 0.0));
        assert_eq!(median_p95(&[3.0, 1.0, 2.0]), (2.0, 3.0));
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(median_p95(&v), (11.0, 19.0));
        assert!(summary_ms(&[])["median_ms"].is_null());
        assert_eq!(summary_ms(&[2.0, 1.0])["max_ms"], 2.0);
    }
}
