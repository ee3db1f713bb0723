//! The BG/NBD model of repeat buying (Fader, Hardie and Lee 2005, "Counting Your Customers the
//! Easy Way: An Alternative to the Pareto/NBD Model", Marketing Science 24(2)): while alive, a
//! customer buys at a Poisson rate λ ~ Gamma(r, α); after each purchase they drop out for good
//! with probability p ~ Beta(a, b). From each customer's history (x, t_x, T) this module fits the
//! four parameters by maximum likelihood, and tells how likely a customer still is to be alive and
//! how many purchases to expect from them.
//!
//! Pure computation: no I/O, no clock. The unit of time is the caller's (days in the daemon,
//! weeks in the CDNOW data of the tests); α carries it, r, a and b have none.

use serde::{Deserialize, Serialize};

use super::bfgs;
use super::special::{digamma, ln_gamma, softplus};

/// The model's parameters: purchase rates λ ~ Gamma(shape r, rate α); dropout probabilities
/// p ~ Beta(a, b). All four are positive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

/// One customer: x repeat purchases, t_x the time of the last purchase and t the age, both
/// measured from the first purchase, in one time unit (days in the daemon; weeks in the CDNOW
/// data).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub x: f64,
    pub t_x: f64,
    pub t: f64,
}

/// How [`fit`] searches.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// Quasi-Newton (BFGS) iterations before giving up; a fit usually needs 20 to 60.
    pub max_iterations: usize,
    /// Relative tolerance on the log-likelihood: converged when the improvement still in reach
    /// (the quasi-Newton estimate) is at most `tolerance · |ℓ|`, and no component of the
    /// gradient over the log-parameters exceeds `√tolerance · |ℓ|` (ℓ per customer).
    pub tolerance: f64,
    /// Threads that share the per-customer sums (0 counts as 1).
    pub threads: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            max_iterations: 2000,
            tolerance: 1e-9,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// A fitted model and how the fit went.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub params: Params,
    /// The log-likelihood at `params`, summed over the customers.
    pub log_likelihood: f64,
    pub iterations: usize,
    pub converged: bool,
    /// How many customers the fit saw.
    pub customers: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("no customers to fit")]
    Empty,
    #[error("no customer has a repeat purchase: the model cannot be fitted")]
    NoRepeatPurchases,
    #[error("customer {index}: {reason}")]
    InvalidSummary { index: usize, reason: &'static str },
    /// The optimiser stopped without meeting the tolerance; `fit` is the best point it reached.
    #[error(
        "the fit did not converge after {} iterations (log-likelihood {})",
        fit.iterations,
        fit.log_likelihood
    )]
    NotConverged { fit: Fit },
    /// The likelihood keeps growing towards the edge of the parameter space (a parameter below
    /// 1e-6 or above 1e6): the data cannot pin the model down (too few customers, or a pattern
    /// the model does not describe). `fit` is where the search stopped.
    #[error("the data do not determine the model: the fit ran off to {:?}", fit.params)]
    Degenerate { fit: Fit },
    #[error("the log-likelihood is not finite")]
    NonFinite,
}

/// The log-likelihood of the customers' histories under `p`, summed over the customers (the
/// paper's equation 6). Customers are taken as given: see [`fit`] for the checks.
pub fn log_likelihood(p: &Params, data: &[Summary]) -> f64 {
    data.iter()
        .map(|s| {
            let x = s.x;
            let shared =
                ln_gamma(p.r + x) - ln_gamma(p.r) + p.r * p.alpha.ln() + ln_gamma(p.a + p.b) + ln_gamma(p.b + x)
                    - ln_gamma(p.b)
                    - ln_gamma(p.a + p.b + x);
            let survived = -(p.r + x) * (p.alpha + s.t).ln();
            if x > 0.0 {
                let dropped = p.a.ln() - (p.b + x - 1.0).ln() - (p.r + x) * (p.alpha + s.t_x).ln();
                shared + log_add_exp(survived, dropped)
            } else {
                shared + survived
            }
        })
        .sum()
}

fn log_add_exp(u: f64, v: f64) -> f64 {
    u.max(v) + (-(u - v).abs()).exp().ln_1p()
}

/// A parameter past this (in either direction, on the log scale) means the fit is degenerate.
const LOG_LIMIT: f64 = 13.815_510_557_964_274; // ln 1e6
/// The box the optimiser stays in: |ln θ| ≤ this.
const LOG_BOUND: f64 = 2.0 * LOG_LIMIT;

/// Maximum-likelihood fit. Returns `NotConverged` (carrying the best point) when the optimiser
/// stops without meeting the tolerance, so the caller can refuse to replace the last good model.
///
/// Each customer must have finite x, t_x and t with x a whole number ≥ 0 and 0 ≤ t_x ≤ t; at least
/// one customer needs a repeat purchase. The search is BFGS with an analytic gradient over the
/// logarithms of the four parameters. Customers with the same (x, t_x, t) are counted once with a
/// weight, and the terms that depend on x alone are computed once per distinct x.
pub fn fit(data: &[Summary], opts: &FitOptions) -> Result<Fit, FitError> {
    let prepared = Prepared::new(data)?;
    let threads = opts.threads.max(1);
    let objective = |theta: &bfgs::Vector| {
        let p = from_log(theta);
        let (ll, grad) = prepared.log_likelihood_and_gradient(&p, threads);
        // The mean negative log-likelihood, so the scale does not grow with the data.
        let n = prepared.customers as f64;
        (-ll / n, [-grad[0] * p.r / n, -grad[1] * p.alpha / n, -grad[2] * p.a / n, -grad[3] * p.b / n])
    };
    let settings = bfgs::Settings {
        max_iterations: opts.max_iterations,
        tolerance: opts.tolerance,
        max_step: 3.0,
        bound: LOG_BOUND,
    };
    let out = bfgs::minimise(objective, prepared.start(), &settings);
    tracing::debug!(
        customers = data.len(),
        rows = prepared.rows.len(),
        iterations = out.iterations,
        evaluations = out.evaluations,
        stop = ?out.stop,
        "bg/nbd fit"
    );
    if out.stop == bfgs::Stop::NonFinite {
        return Err(FitError::NonFinite);
    }
    let result = Fit {
        params: from_log(&out.x),
        log_likelihood: -out.f * prepared.customers as f64,
        iterations: out.iterations,
        converged: out.stop == bfgs::Stop::Converged,
        customers: data.len(),
    };
    if out.x.iter().any(|v| v.abs() > LOG_LIMIT) {
        return Err(FitError::Degenerate { fit: result });
    }
    if !result.converged {
        return Err(FitError::NotConverged { fit: result });
    }
    Ok(result)
}

fn from_log(theta: &bfgs::Vector) -> Params {
    Params { r: theta[0].exp(), alpha: theta[1].exp(), a: theta[2].exp(), b: theta[3].exp() }
}

/// The customers as the likelihood needs them: one row per distinct (x, t_x, t) with a weight,
/// sorted by x, and the distinct x.
struct Prepared {
    xs: Vec<f64>,
    /// How many customers have each x.
    x_weights: Vec<f64>,
    rows: Vec<Row>,
    customers: usize,
    mean_x: f64,
    mean_t: f64,
}

#[derive(Debug, Clone, Copy)]
struct Row {
    /// Index into `xs`.
    x: u32,
    t_x: f64,
    t: f64,
    weight: f64,
}

/// Rows per thread below which one thread does the whole sum.
const ROWS_PER_THREAD: usize = 16_384;

impl Prepared {
    fn new(data: &[Summary]) -> Result<Prepared, FitError> {
        if data.is_empty() {
            return Err(FitError::Empty);
        }
        for (index, s) in data.iter().enumerate() {
            if let Some(reason) = invalid(s) {
                return Err(FitError::InvalidSummary { index, reason });
            }
        }
        if data.iter().all(|s| s.x == 0.0) {
            return Err(FitError::NoRepeatPurchases);
        }
        // t_x does not enter the likelihood without a repeat purchase: merge those customers by age.
        // Adding 0.0 turns −0.0 into 0.0 so equal values have equal bits.
        let mut keys: Vec<(u64, u64, u64)> = data
            .iter()
            .map(|s| {
                let t_x = if s.x == 0.0 { 0.0 } else { s.t_x + 0.0 };
                ((s.x + 0.0).to_bits(), t_x.to_bits(), (s.t + 0.0).to_bits())
            })
            .collect();
        // Non-negative floats sort like their bits.
        keys.sort_unstable();
        let mut xs = Vec::new();
        let mut x_weights: Vec<f64> = Vec::new();
        let mut rows: Vec<Row> = Vec::new();
        for (x, t_x, t) in keys {
            let x = f64::from_bits(x);
            if xs.last() != Some(&x) {
                xs.push(x);
                x_weights.push(0.0);
            }
            *x_weights.last_mut().expect("pushed above") += 1.0;
            let xi = (xs.len() - 1) as u32;
            let (t_x, t) = (f64::from_bits(t_x), f64::from_bits(t));
            match rows.last_mut() {
                Some(row) if row.x == xi && row.t_x == t_x && row.t == t => row.weight += 1.0,
                _ => rows.push(Row { x: xi, t_x, t, weight: 1.0 }),
            }
        }
        let n = data.len() as f64;
        Ok(Prepared {
            xs,
            x_weights,
            rows,
            customers: data.len(),
            mean_x: data.iter().map(|s| s.x).sum::<f64>() / n,
            mean_t: data.iter().map(|s| s.t).sum::<f64>() / n,
        })
    }

    /// The search starts at r = 1, a = 1, b = 1 and α matching the mean purchase rate.
    fn start(&self) -> bfgs::Vector {
        let alpha = if self.mean_t > 0.0 { (self.mean_t / self.mean_x.max(1e-3)).clamp(1e-3, 1e5) } else { 1.0 };
        [0.0, alpha.ln(), 0.0, 0.0]
    }

    /// ℓ and ∂ℓ/∂(r, α, a, b).
    fn log_likelihood_and_gradient(&self, p: &Params, threads: usize) -> (f64, [f64; 4]) {
        let Params { r, alpha, a, b } = *p;
        let (ln_alpha, ln_a) = (alpha.ln(), a.ln());
        let (lg_r, lg_b, lg_ab) = (ln_gamma(r), ln_gamma(b), ln_gamma(a + b));
        let (dg_r, dg_b, dg_ab) = (digamma(r), digamma(b), digamma(a + b));
        // What depends on x alone, once per distinct x.
        let per_x: Vec<PerX> = self
            .xs
            .iter()
            .map(|&x| PerX {
                s: r + x,
                constant: ln_gamma(r + x) - lg_r + r * ln_alpha + lg_ab + ln_gamma(b + x) - lg_b - ln_gamma(a + b + x),
                ln_ratio: if x > 0.0 { ln_a - (b + x - 1.0).ln() } else { f64::NEG_INFINITY },
                inv_b: if x > 0.0 { 1.0 / (b + x - 1.0) } else { 0.0 },
                d_r: digamma(r + x) - dg_r + ln_alpha,
                d_a: dg_ab - digamma(a + b + x),
                d_b: dg_ab + digamma(b + x) - dg_b - digamma(a + b + x),
            })
            .collect();
        let threads = threads.min(self.rows.len().div_ceil(ROWS_PER_THREAD)).max(1);
        let rows = if threads == 1 {
            row_sums(&self.rows, &per_x, alpha)
        } else {
            let chunk = self.rows.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let handles: Vec<_> =
                    self.rows.chunks(chunk).map(|rows| scope.spawn(|| row_sums(rows, &per_x, alpha))).collect();
                let mut sums = Sums::default();
                for h in handles {
                    sums.add(&h.join().expect("a likelihood thread panicked"));
                }
                sums
            })
        };
        // The rows hold Σ w·q for a (q the dropped branch's share): ∂/∂a of ln a is 1/a.
        let mut total = Sums { a: rows.a / a, ..rows };
        for (c, w) in per_x.iter().zip(&self.x_weights) {
            total.add(&Sums { ll: w * c.constant, r: w * c.d_r, alpha: w * r / alpha, a: w * c.d_a, b: w * c.d_b });
        }
        (total.ll, [total.r, total.alpha, total.a, total.b])
    }
}

struct PerX {
    s: f64,
    constant: f64,
    ln_ratio: f64,
    inv_b: f64,
    d_r: f64,
    d_a: f64,
    d_b: f64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    ll: f64,
    r: f64,
    alpha: f64,
    a: f64,
    b: f64,
}

impl Sums {
    fn add(&mut self, o: &Sums) {
        self.ll += o.ll;
        self.r += o.r;
        self.alpha += o.alpha;
        self.a += o.a;
        self.b += o.b;
    }
}

/// The parts of ℓ and its gradient that vary with t_x and t: the log of the sum of the two
/// branches (alive after the last purchase, or dropped out right after it) and its derivatives.
/// `a` holds Σ w·q where q is the weight of the dropped branch.
fn row_sums(rows: &[Row], per_x: &[PerX], alpha: f64) -> Sums {
    let mut sums = Sums::default();
    for row in rows {
        let c = &per_x[row.x as usize];
        let ln_t = (alpha + row.t).ln();
        let survived = -c.s * ln_t;
        if c.inv_b == 0.0 {
            sums.ll += row.weight * survived;
            sums.r -= row.weight * ln_t;
            sums.alpha -= row.weight * c.s / (alpha + row.t);
            continue;
        }
        let ln_tx = (alpha + row.t_x).ln();
        let dropped = c.ln_ratio - c.s * ln_tx;
        // q: the share of the dropped branch in the sum, from the same exponential as the sum.
        let (ll, q) = if survived >= dropped {
            let e = (dropped - survived).exp();
            (survived + e.ln_1p(), e / (1.0 + e))
        } else {
            let e = (survived - dropped).exp();
            (dropped + e.ln_1p(), 1.0 / (1.0 + e))
        };
        let w = row.weight;
        sums.ll += w * ll;
        sums.r -= w * (ln_t + q * (ln_tx - ln_t));
        sums.alpha -= w * c.s * ((1.0 - q) / (alpha + row.t) + q / (alpha + row.t_x));
        sums.a += w * q;
        sums.b -= w * q * c.inv_b;
    }
    sums
}

fn invalid(s: &Summary) -> Option<&'static str> {
    if !(s.x.is_finite() && s.t_x.is_finite() && s.t.is_finite()) {
        return Some("x, t_x and t must be finite");
    }
    if s.x < 0.0 || s.x.fract() != 0.0 {
        return Some("x (repeat purchases) must be a whole number, 0 or more");
    }
    if s.t_x < 0.0 {
        return Some("t_x (time of the last purchase) must not be negative");
    }
    if s.t_x > s.t {
        return Some("t_x (time of the last purchase) must not be after t (the age)");
    }
    None
}

/// P(alive | x, t_x, T): the probability that the customer has not dropped out (Hardie's note
/// 021). It is 1 for x = 0: in BG/NBD a customer can only drop out right after a purchase, so
/// one who never bought again since the first purchase is alive by construction, however long
/// ago that was. Callers that need to flag long-silent one-time buyers must use their recency.
pub fn p_alive(p: &Params, s: &Summary) -> f64 {
    if s.x <= 0.0 {
        return 1.0;
    }
    // 1 / (1 + a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)), through the log of the second term.
    let ln_odds = p.a.ln() - (p.b + s.x - 1.0).ln() + (p.r + s.x) * ((p.alpha + s.t).ln() - (p.alpha + s.t_x).ln());
    1.0 / (1.0 + ln_odds.exp())
}

/// Expected purchases in the next `t` time units, E[Y(t) | x, t_x, T] (the paper's equation 10):
/// P(alive) times the expectation for a customer known to be alive, whose λ has the posterior
/// Gamma(r + x, α + T) and p the posterior Beta(a, b + x). 0 for t ≤ 0.
///
/// The paper writes the alive part as (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) ·
/// ₂F₁(r+x, b+x; a+b+x−1; z)], z = t/(α+T+t), which is 0/0 at a = 1 and cancels badly near it.
/// Here the ₂F₁ goes through Euler's transformation, which takes the a − 1 factor out of the
/// series exactly (see `alive_series`); for z > 0.9, where the series would need thousands of
/// terms, or when its terms cancel, the alive part is integrated over the Beta posterior of p
/// instead (`alive_quadrature`).
pub fn expected_purchases(p: &Params, s: &Summary, t: f64) -> f64 {
    if t.is_nan() || t <= 0.0 {
        return 0.0;
    }
    let alive = alive_series(p, s, t).unwrap_or_else(|| alive_quadrature(p, s, t));
    alive * p_alive(p, s)
}

/// z above which the series is not tried.
const SERIES_MAX_Z: f64 = 0.9;
const SERIES_MAX_TERMS: usize = 1000;

/// The alive part by series, or `None` when it would be slow or inaccurate.
///
/// With A = r+x, B = b+x, C = a+b+x−1 and β = a − 1, Euler's transformation gives
/// (1−z)^A ₂F₁(A, B; C; z) = (1−z)^β ₂F₁(C−A, β; C; z) = (1−z)^β (1 + β S), where
/// S = Σ_{k≥1} (C−A)_k (a)_{k−1} z^k / ((C)_k k!). So the alive part is
/// C [(1 − (1−z)^β)/β − (1−z)^β S], and C·S = Σ_{k≥1} T_k with T_1 = (C−A) z and
/// T_{k+1}/T_k = (C−A+k)(a+k−1) z / ((C+k)(k+1)): no division by β, and no pole since C > −1.
fn alive_series(p: &Params, s: &Summary, t: f64) -> Option<f64> {
    let z = t / (p.alpha + s.t + t);
    if z > SERIES_MAX_Z {
        return None;
    }
    let ln_1mz = -(t / (p.alpha + s.t)).ln_1p();
    let beta = p.a - 1.0;
    // (1 − (1−z)^β)/β, → −ln(1−z) as β → 0.
    let g = if beta == 0.0 { -ln_1mz } else { -(beta * ln_1mz).exp_m1() / beta };
    let c = p.a + p.b + s.x - 1.0;
    let c_minus_a = p.a + p.b - 1.0 - p.r;
    let mut term = c_minus_a * z;
    let mut sum = term;
    let mut magnitude = term.abs();
    let mut converged = term == 0.0;
    for k in 1..SERIES_MAX_TERMS {
        let k = k as f64;
        term *= (c_minus_a + k) * (p.a + k - 1.0) * z / ((c + k) * (k + 1.0));
        sum += term;
        magnitude += term.abs();
        if term.abs() <= 1e-17 * sum.abs() || term == 0.0 {
            converged = true;
            break;
        }
    }
    if !converged {
        return None;
    }
    let weight = (beta * ln_1mz).exp();
    let alive = c * g - weight * sum;
    // Too much cancellation between the two parts (or inside the series) to trust the result.
    let scale = (c * g).abs() + weight * magnitude;
    (alive.is_finite() && alive > 0.0 && scale <= 1e6 * alive).then_some(alive)
}

/// The alive part as E[(1 − (1 + c·p)^−(r+x)) / p] over p ~ Beta(a, b+x), c = t/(α+T), by
/// tanh-sinh quadrature (p = 1/(1 + e^−v), v = π sinh τ) in logarithms, so neither end of (0, 1)
/// underflows and the Beta density's singularities at the ends cost nothing.
fn alive_quadrature(p: &Params, s: &Summary, t: f64) -> f64 {
    const STEP: f64 = 1.0 / 16.0;
    const MAX_TAU: f64 = 8.0;
    let shape = p.r + s.x;
    let b = p.b + s.x;
    let ln_c = t.ln() - (p.alpha + s.t).ln();
    let ln_beta = ln_gamma(p.a) + ln_gamma(b) - ln_gamma(p.a + b);
    let term = |tau: f64| {
        let v = std::f64::consts::PI * tau.sinh();
        let ln_p = -softplus(-v);
        let ln_q = -softplus(v);
        let cp = (ln_c + ln_p).exp();
        // ln(1 − (1 + cp)^−shape), by its series when cp is tiny.
        let ln_h = if cp < 1e-8 {
            shape.ln() + ln_c + ln_p + (-(shape + 1.0) * cp / 2.0).ln_1p()
        } else {
            (-(-shape * cp.ln_1p()).exp_m1()).ln()
        };
        // p^(a−2) (1−p)^(b−1) h · dp/dτ, with dp/dτ = p (1−p) π cosh τ.
        (p.a - 1.0) * ln_p + b * ln_q + ln_h + (std::f64::consts::PI * tau.cosh()).ln() - ln_beta
    };
    let mut sum = term(0.0).exp();
    for side in [1.0, -1.0] {
        let mut k = 1.0;
        while k * STEP <= MAX_TAU {
            let v = term(side * k * STEP).exp();
            sum += v;
            if v <= 1e-18 * sum && k * STEP > 1.0 {
                break;
            }
            k += 1.0;
        }
    }
    sum * STEP
}

#[cfg(test)]
mod tests;
