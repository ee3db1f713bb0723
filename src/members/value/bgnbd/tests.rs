//! BG/NBD against the paper's CDNOW estimates, against lifetimes and 50-digit mpmath values
//! (tests/data/cdnow/reference.py), and against data simulated from known parameters.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Beta, Distribution, Exp, Gamma};

use super::*;

const CDNOW: &str = include_str!("../../../../tests/data/cdnow/cdnow_customers_summary.csv");
const REFERENCE: &str = include_str!("../../../../tests/data/cdnow/reference.csv");

/// The estimates published in the paper (section 5).
const PUBLISHED: Params = Params { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
const PUBLISHED_LL: f64 = -9582.4;

fn cdnow() -> Vec<Summary> {
    let mut lines = CDNOW.lines();
    assert_eq!(lines.next(), Some("ID,frequency,recency,T"));
    let data: Vec<Summary> = lines
        .map(|line| {
            let f: Vec<f64> = line.split(',').map(|v| v.parse().expect("a number")).collect();
            Summary { x: f[1], t_x: f[2], t: f[3] }
        })
        .collect();
    assert_eq!(data.len(), 2357);
    data
}

fn options() -> FitOptions {
    FitOptions { threads: 2, ..FitOptions::default() }
}

fn within(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want.abs()
}

#[test]
fn cdnow_fit_reproduces_the_published_estimates() {
    let fit = fit(&cdnow(), &options()).expect("the CDNOW fit converges");
    let p = fit.params;
    for (name, got, want) in
        [("r", p.r, PUBLISHED.r), ("alpha", p.alpha, PUBLISHED.alpha), ("a", p.a, PUBLISHED.a), ("b", p.b, PUBLISHED.b)]
    {
        assert!(within(got, want, 0.01), "{name}: {got} against the published {want} ({fit:?})");
    }
    assert!((fit.log_likelihood - PUBLISHED_LL).abs() <= 0.1, "{fit:?}");
    assert!(fit.converged);
    assert_eq!(fit.customers, 2357);
    // The reported log-likelihood is the plain sum's, at the reported point.
    assert!((log_likelihood(&p, &cdnow()) - fit.log_likelihood).abs() < 1e-6);
}

#[test]
fn cdnow_fit_is_the_same_on_one_thread_and_many() {
    let one = fit(&cdnow(), &FitOptions { threads: 1, ..options() }).unwrap();
    let many = fit(&cdnow(), &FitOptions { threads: 7, ..options() }).unwrap();
    assert!(within(one.params.b, many.params.b, 1e-6), "{one:?} {many:?}");
    assert!((one.log_likelihood - many.log_likelihood).abs() < 1e-6);
}

#[test]
fn log_likelihood_at_the_published_estimates() {
    // The published estimates are rounded to 3 decimals: their log-likelihood is the published
    // maximum to within a few hundredths.
    let ll = log_likelihood(&PUBLISHED, &cdnow());
    assert!((ll - PUBLISHED_LL).abs() < 0.05, "{ll}");
}

#[test]
fn the_fast_likelihood_and_its_gradient_agree_with_the_plain_sum() {
    let data = cdnow();
    let prepared = Prepared::new(&data).unwrap();
    let p = Params { r: 0.4, alpha: 3.0, a: 1.3, b: 1.7 };
    for threads in [1, 3] {
        let (ll, grad) = prepared.log_likelihood_and_gradient(&p, threads);
        assert!((ll - log_likelihood(&p, &data)).abs() < 1e-8 * ll.abs());
        // Central differences of the plain sum.
        let h = 1e-6;
        let bump = |i: usize, d: f64| {
            let mut q = [p.r, p.alpha, p.a, p.b];
            q[i] *= 1.0 + d;
            let q = Params { r: q[0], alpha: q[1], a: q[2], b: q[3] };
            log_likelihood(&q, &data)
        };
        let values = [p.r, p.alpha, p.a, p.b];
        for i in 0..4 {
            let numeric = (bump(i, h) - bump(i, -h)) / (2.0 * h * values[i]);
            assert!((grad[i] - numeric).abs() < 1e-4 * numeric.abs().max(1.0), "{i}: {} against {numeric}", grad[i]);
        }
    }
}

/// One row of reference.csv.
struct Reference {
    case: String,
    p: Params,
    s: Summary,
    t: f64,
    p_alive: f64,
    expected: f64,
}

fn references() -> Vec<Reference> {
    let mut lines = REFERENCE.lines();
    assert_eq!(lines.next(), Some("params,r,alpha,a,b,x,t_x,T,t,p_alive,expected,source"));
    lines
        .map(|line| {
            let v: Vec<&str> = line.split(',').collect();
            let f = |i: usize| -> f64 { v[i].parse().expect("a number") };
            Reference {
                case: line.to_string(),
                p: Params { r: f(1), alpha: f(2), a: f(3), b: f(4) },
                s: Summary { x: f(5), t_x: f(6), t: f(7) },
                t: f(8),
                p_alive: f(9),
                expected: f(10),
            }
        })
        .collect()
}

#[test]
fn p_alive_matches_lifetimes() {
    let refs = references();
    assert_eq!(refs.len(), 250);
    for r in &refs {
        let got = p_alive(&r.p, &r.s);
        assert!(within(got, r.p_alive, 1e-9), "{}: got {got}", r.case);
    }
}

#[test]
fn expected_purchases_match_lifetimes_and_mpmath() {
    for r in references() {
        let got = expected_purchases(&r.p, &r.s, r.t);
        assert!(within(got, r.expected, 1e-6), "{}: got {got}", r.case);
    }
}

#[test]
fn the_series_and_the_quadrature_agree_where_both_apply() {
    // Two independent routes to the same integral, over the reference cases where z ≤ 0.9.
    for r in references() {
        if let Some(series) = alive_series(&r.p, &r.s, r.t) {
            let quadrature = alive_quadrature(&r.p, &r.s, r.t);
            assert!(within(quadrature, series, 1e-9), "{}: series {series}, quadrature {quadrature}", r.case);
        }
    }
}

#[test]
fn the_papers_worked_example() {
    // CDNOW customer 1 (x = 2, t_x = 30.43, T = 38.86): 1.226 purchases expected in the next 39
    // weeks at the published estimates (lifetimes: 1.2260281747671).
    let s = Summary { x: 2.0, t_x: 30.43, t: 38.86 };
    let e = expected_purchases(&PUBLISHED, &s, 39.0);
    assert!((e - 1.226).abs() < 5e-4, "{e}");
}

#[test]
fn expected_purchases_at_a_equal_to_one() {
    // At a = 1 the paper's formula is 0/0; the limit is continuous: compare with a = 1 ± 1e-7
    // (the reference near_one case checks a = 1.001 against mpmath).
    let s = Summary { x: 3.0, t_x: 20.0, t: 30.0 };
    let at = |a: f64| expected_purchases(&Params { r: 0.8, alpha: 12.0, a, b: 3.0 }, &s, 40.0);
    let (below, one, above) = (at(1.0 - 1e-7), at(1.0), at(1.0 + 1e-7));
    assert!(one.is_finite() && one > 0.0);
    assert!(within(one, below, 1e-6) && within(one, above, 1e-6), "{below} {one} {above}");
}

#[test]
fn p_alive_is_one_without_repeat_purchases() {
    assert_eq!(p_alive(&PUBLISHED, &Summary { x: 0.0, t_x: 0.0, t: 1000.0 }), 1.0);
}

#[test]
fn nothing_is_expected_over_no_time() {
    let s = Summary { x: 2.0, t_x: 30.43, t: 38.86 };
    assert_eq!(expected_purchases(&PUBLISHED, &s, 0.0), 0.0);
    assert_eq!(expected_purchases(&PUBLISHED, &s, -5.0), 0.0);
}

/// Customers from the model's own story: λ ~ Gamma(r, α), p ~ Beta(a, b); purchases at rate λ
/// from the first one at time 0; after each repeat purchase the customer drops out with
/// probability p; observed until their age `t`.
fn simulate(p: &Params, n: usize, ages: (f64, f64), seed: u64) -> Vec<Summary> {
    let mut rng = StdRng::seed_from_u64(seed);
    let rates = Gamma::new(p.r, 1.0 / p.alpha).unwrap();
    let dropouts = Beta::new(p.a, p.b).unwrap();
    (0..n)
        .map(|_| {
            let lambda: f64 = rates.sample(&mut rng);
            let dropout: f64 = dropouts.sample(&mut rng);
            let t = rng.random_range(ages.0..ages.1);
            let (mut x, mut t_x) = (0.0, 0.0);
            if lambda > 0.0 {
                let gaps = Exp::new(lambda).unwrap();
                loop {
                    let next = t_x + gaps.sample(&mut rng);
                    if next > t {
                        break;
                    }
                    x += 1.0;
                    t_x = next;
                    if rng.random_bool(dropout) {
                        break;
                    }
                }
            }
            Summary { x, t_x, t }
        })
        .collect()
}

#[test]
fn recovers_the_parameters_it_simulated() {
    // 20,000 customers observed for 50 to 150 time units. Over seeds 0 to 19 the relative errors
    // had a root mean square of 1.1% (r), 1.2% (alpha), 4.0% (a) and 5.2% (b): the tolerances are
    // about 3.5 times that.
    let truth = Params { r: 0.75, alpha: 10.0, a: 1.2, b: 3.5 };
    let data = simulate(&truth, 20_000, (50.0, 150.0), 7);
    let fit = fit(&data, &options()).expect("converges");
    let p = fit.params;
    for (name, got, want, tolerance) in [
        ("r", p.r, truth.r, 0.04),
        ("alpha", p.alpha, truth.alpha, 0.04),
        ("a", p.a, truth.a, 0.14),
        ("b", p.b, truth.b, 0.18),
    ] {
        assert!(within(got, want, tolerance), "{name}: {got} against {want} ({fit:?})");
    }
}

#[test]
fn no_customers_is_an_error() {
    assert!(matches!(fit(&[], &options()), Err(FitError::Empty)));
}

#[test]
fn no_repeat_purchases_is_an_error() {
    let data: Vec<Summary> = (0..500).map(|i| Summary { x: 0.0, t_x: 0.0, t: 10.0 + i as f64 }).collect();
    assert!(matches!(fit(&data, &options()), Err(FitError::NoRepeatPurchases)));
}

#[test]
fn three_customers_are_not_a_model() {
    let data = [
        Summary { x: 2.0, t_x: 30.43, t: 38.86 },
        Summary { x: 1.0, t_x: 1.71, t: 38.86 },
        Summary { x: 0.0, t_x: 0.0, t: 38.86 },
    ];
    // The likelihood grows without end as a and b run off together (a point mass for p).
    let result = fit(&data, &options());
    assert!(matches!(result, Err(FitError::Degenerate { .. })), "{result:?}");
}

#[test]
fn invalid_customers_are_named() {
    let good = Summary { x: 1.0, t_x: 2.0, t: 3.0 };
    for (bad, words) in [
        (Summary { x: -1.0, ..good }, "whole number"),
        (Summary { x: 1.5, ..good }, "whole number"),
        (Summary { t_x: 4.0, ..good }, "after t"),
        (Summary { t_x: -1.0, ..good }, "negative"),
        (Summary { t: f64::NAN, ..good }, "finite"),
        (Summary { x: f64::INFINITY, ..good }, "finite"),
    ] {
        match fit(&[good, good, bad], &options()) {
            Err(FitError::InvalidSummary { index: 2, reason }) => assert!(reason.contains(words), "{reason}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn too_few_iterations_is_not_converged_and_carries_the_best_point() {
    let data = cdnow();
    match fit(&data, &FitOptions { max_iterations: 2, ..options() }) {
        Err(FitError::NotConverged { fit }) => {
            assert!(!fit.converged);
            assert_eq!(fit.iterations, 2);
            assert!(fit.log_likelihood < PUBLISHED_LL);
            assert!((log_likelihood(&fit.params, &data) - fit.log_likelihood).abs() < 1e-6);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fit_errors_read_well() {
    let e = FitError::InvalidSummary { index: 4, reason: "x must be finite" };
    assert_eq!(e.to_string(), "customer 4: x must be finite");
}
