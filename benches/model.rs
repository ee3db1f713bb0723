//! `cargo bench --bench model [-- CUSTOMERS]` (1,000,000 by default): the BG/NBD fit and the
//! per-member scoring on synthetic customers drawn from the model itself (seeded), in days.
//! Prints one line per workload: the fit on one thread and on all (with its estimates against the
//! truth); P(alive) and expected purchases for every customer (over 90 days, and over 10 years,
//! where the quadrature replaces the series); `score_all` (quintiles, model, segments) over as many
//! member histories.

use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Beta, Distribution, Exp, Gamma};
use tidings::members::value::bgnbd::{self, FitOptions, Params, Summary};
use tidings::members::value::rfm::{self, History, SegmentRules};

/// A loyalty programme in days: a purchase every two months or so at first, a third of
/// customers dropping out after each purchase on average.
const TRUTH: Params = Params { r: 0.8, alpha: 50.0, a: 0.9, b: 2.0 };

/// Customers who joined over the last two years: the model's story (see the unit tests'
/// `simulate`), plus the purchase timestamps and a spend for the scoring.
fn customers(n: usize, now: Timestamp) -> (Vec<Summary>, Vec<History>) {
    let mut rng = StdRng::seed_from_u64(42);
    let rates = Gamma::new(TRUTH.r, 1.0 / TRUTH.alpha).unwrap();
    let dropouts = Beta::new(TRUTH.a, TRUTH.b).unwrap();
    let mut summaries = Vec::with_capacity(n);
    let mut histories = Vec::with_capacity(n);
    for i in 0..n {
        let lambda: f64 = rates.sample(&mut rng);
        let dropout: f64 = dropouts.sample(&mut rng);
        let t = rng.random_range(1.0..730.0);
        let (mut x, mut t_x) = (0u32, 0.0);
        if lambda > 0.0 {
            let gaps = Exp::new(lambda).unwrap();
            loop {
                let next = t_x + gaps.sample(&mut rng);
                if next > t {
                    break;
                }
                x += 1;
                t_x = next;
                if rng.random_bool(dropout) {
                    break;
                }
            }
        }
        summaries.push(Summary { x: f64::from(x), t_x, t });
        let day = |d: f64| now - SignedDuration::from_secs_f64(d * 86_400.0);
        histories.push(History {
            member_id: i as i64,
            joined: day(t + 3.0),
            purchase_days: x + 1,
            first_purchase: Some(day(t)),
            last_purchase: Some(day(t - t_x)),
            spend: f64::from(x + 1) * rng.random_range(5.0..80.0),
        });
    }
    (summaries, histories)
}

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let now: Timestamp = "2026-11-23T12:00:00Z".parse().unwrap();
    let started = Instant::now();
    let (data, histories) = customers(n, now);
    println!("generate {n} customers: {:.2} s", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let one = bgnbd::fit(&data, &FitOptions { threads: 1, ..FitOptions::default() }).expect("the fit converges");
    println!("fit (1 thread): {:.2} s, {} iterations", started.elapsed().as_secs_f64(), one.iterations);

    let opts = FitOptions::default();
    let started = Instant::now();
    let fit = bgnbd::fit(&data, &opts).expect("the fit converges");
    let p = fit.params;
    println!(
        "fit ({} threads): {:.2} s, {} iterations, ll {:.1}; r {:.4} alpha {:.3} a {:.4} b {:.4} (truth {} {} {} {})",
        opts.threads,
        started.elapsed().as_secs_f64(),
        fit.iterations,
        fit.log_likelihood,
        p.r,
        p.alpha,
        p.a,
        p.b,
        TRUTH.r,
        TRUTH.alpha,
        TRUTH.a,
        TRUTH.b,
    );

    let started = Instant::now();
    let alive: f64 = data.iter().map(|s| bgnbd::p_alive(&p, s)).sum();
    println!("p_alive for all: {:.2} s (mean {:.4})", started.elapsed().as_secs_f64(), alive / n as f64);

    let started = Instant::now();
    let expected: f64 = data.iter().map(|s| bgnbd::expected_purchases(&p, s, 90.0)).sum();
    println!(
        "expected purchases in 90 days for all: {:.2} s (mean {:.4})",
        started.elapsed().as_secs_f64(),
        expected / n as f64
    );

    // z = t/(α+T+t) > 0.9 for most customers: the quadrature rather than the series.
    let started = Instant::now();
    let expected: f64 = data.iter().map(|s| bgnbd::expected_purchases(&p, s, 3650.0)).sum();
    println!(
        "expected purchases in 10 years for all: {:.2} s (mean {:.4})",
        started.elapsed().as_secs_f64(),
        expected / n as f64
    );

    let started = Instant::now();
    let scores = rfm::score_all(&histories, Some(&p), now, &SegmentRules::default(), 90.0);
    let elapsed = started.elapsed().as_secs_f64();
    let mut counts = std::collections::BTreeMap::new();
    for s in &scores {
        *counts.entry(s.segment.as_str()).or_insert(0usize) += 1;
    }
    println!("score_all with the model: {elapsed:.2} s; segments {counts:?}");
}
