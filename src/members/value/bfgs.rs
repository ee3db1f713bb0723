//! A small BFGS minimiser for smooth functions of a few variables with an analytic gradient, with
//! a line search that meets the strong Wolfe conditions (Nocedal and Wright, "Numerical
//! Optimization", 2nd ed., algorithms 3.5 and 3.6, and (6.17) for the update). The BG/NBD fit runs
//! it on four log-parameters; it lives apart so it can be tested on functions with known minima.

/// The number of variables.
pub(crate) const N: usize = 4;

pub(crate) type Vector = [f64; N];

/// How the search stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The convergence test held.
    Converged,
    /// `max_iterations` ran out first.
    MaxIterations,
    /// No step along the search direction lowered the function, even after a restart on the
    /// steepest descent.
    NoProgress,
    /// The function or its gradient was not finite at the starting point.
    NonFinite,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    /// The best point found, and the function there.
    pub x: Vector,
    pub f: f64,
    pub iterations: usize,
    pub evaluations: usize,
    pub stop: Stop,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub max_iterations: usize,
    /// Relative tolerance on the function value (see [`minimise`]).
    pub tolerance: f64,
    /// The largest change of any one variable in a step.
    pub max_step: f64,
    /// The box the variables stay in: |xᵢ| ≤ bound.
    pub bound: f64,
}

const C1: f64 = 1e-4;
const C2: f64 = 0.9;

/// Minimises `f` from `x0`. `f` returns the value and gradient, or a non-finite value where it
/// cannot be evaluated (the line search then steps back).
///
/// Converged means both: the decrease the quasi-Newton model still predicts, ½ gᵀHg, is at most
/// `tolerance · max(|f|, 1)`, and no gradient component exceeds `√tolerance · max(|f|, 1)`.
pub(crate) fn minimise(mut f: impl FnMut(&Vector) -> (f64, Vector), x0: Vector, settings: &Settings) -> Outcome {
    let mut evaluations = 1;
    let mut x = x0;
    let (mut fx, mut g) = f(&x);
    let outcome = |x: Vector, fx: f64, iterations: usize, evaluations: usize, stop: Stop| Outcome {
        x,
        f: fx,
        iterations,
        evaluations,
        stop,
    };
    if !fx.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return outcome(x, fx, 0, evaluations, Stop::NonFinite);
    }
    let mut h = identity();
    let mut scaled = false;
    for iteration in 0..settings.max_iterations {
        if converged(fx, &g, &h, settings.tolerance) {
            return outcome(x, fx, iteration, evaluations, Stop::Converged);
        }
        let mut step = None;
        // A failed search on the quasi-Newton direction gets one retry on the steepest descent.
        for restart in [false, true] {
            if restart {
                h = identity();
                scaled = false;
            }
            let d = descent(&h, &g);
            let slope = dot(&g, &d);
            if slope >= 0.0 {
                continue;
            }
            let alpha_max = longest_step(&x, &d, settings);
            if alpha_max <= 0.0 {
                continue;
            }
            let mut phi = |alpha: f64| {
                evaluations += 1;
                let xt = axpy(&x, alpha, &d);
                let (ft, gt) = f(&xt);
                let finite = ft.is_finite() && gt.iter().all(|v| v.is_finite());
                let ft = if finite { ft } else { f64::INFINITY };
                Point { alpha, f: ft, slope: if finite { dot(&gt, &d) } else { f64::NAN }, g: gt }
            };
            let start = Point { alpha: 0.0, f: fx, slope, g };
            if let Some(p) = line_search(&mut phi, start, 1f64.min(alpha_max), alpha_max) {
                step = Some((d, p));
                break;
            }
        }
        let Some((d, p)) = step else {
            return outcome(x, fx, iteration, evaluations, Stop::NoProgress);
        };
        let x_new = axpy(&x, p.alpha, &d);
        let s = sub(&x_new, &x);
        let y = sub(&p.g, &g);
        let sy = dot(&s, &y);
        if sy > 1e-12 * norm(&s) * norm(&y) {
            if !scaled {
                // Nocedal and Wright (6.20): size the first inverse Hessian from the first step.
                let scale = sy / dot(&y, &y);
                h = identity().map(|row| row.map(|v| v * scale));
                scaled = true;
            }
            update(&mut h, &s, &y, sy);
        }
        x = x_new;
        fx = p.f;
        g = p.g;
    }
    let stop = if converged(fx, &g, &h, settings.tolerance) { Stop::Converged } else { Stop::MaxIterations };
    outcome(x, fx, settings.max_iterations, evaluations, stop)
}

fn converged(f: f64, g: &Vector, h: &[Vector; N], tolerance: f64) -> bool {
    let scale = f.abs().max(1.0);
    let decrement = 0.5 * dot(g, &descent(h, g)).abs();
    decrement <= tolerance * scale && g.iter().all(|v| v.abs() <= tolerance.sqrt() * scale)
}

/// The largest α with x + αd inside the box and no component of αd above `max_step`.
fn longest_step(x: &Vector, d: &Vector, settings: &Settings) -> f64 {
    let mut alpha = f64::INFINITY;
    for i in 0..N {
        if d[i] == 0.0 {
            continue;
        }
        alpha = alpha.min(settings.max_step / d[i].abs());
        let wall = if d[i] > 0.0 { settings.bound - x[i] } else { x[i] + settings.bound };
        alpha = alpha.min(wall.max(0.0) / d[i].abs());
    }
    alpha
}

#[derive(Debug, Clone, Copy)]
struct Point {
    alpha: f64,
    f: f64,
    /// φ′(α) = ∇f(x + αd) · d.
    slope: f64,
    g: Vector,
}

/// Algorithm 3.5: a step meeting the strong Wolfe conditions, or failing that the best step that
/// lowered the function enough (Armijo); `None` when nothing lowered it.
fn line_search(phi: &mut impl FnMut(f64) -> Point, start: Point, first: f64, alpha_max: f64) -> Option<Point> {
    let armijo = |p: &Point| p.f <= start.f + C1 * p.alpha * start.slope;
    let curvature = |p: &Point| p.slope.abs() <= -C2 * start.slope;
    let mut prev = start;
    let mut alpha = first;
    for i in 0..30 {
        let p = phi(alpha);
        if !armijo(&p) || (i > 0 && p.f >= prev.f) {
            return zoom(phi, start, prev, p);
        }
        if curvature(&p) {
            return Some(p);
        }
        if p.slope >= 0.0 {
            return zoom(phi, start, p, prev);
        }
        if alpha >= alpha_max {
            // Against the wall or the step cap, still going down: take it.
            return Some(p);
        }
        prev = p;
        alpha = (2.0 * alpha).min(alpha_max);
    }
    (prev.alpha > 0.0).then_some(prev)
}

/// Algorithm 3.6: narrows [lo, hi] (lo the end with the lower value that met Armijo) by
/// safeguarded cubic interpolation.
fn zoom(phi: &mut impl FnMut(f64) -> Point, start: Point, mut lo: Point, mut hi: Point) -> Option<Point> {
    let armijo = |p: &Point| p.f <= start.f + C1 * p.alpha * start.slope;
    for _ in 0..40 {
        let width = hi.alpha - lo.alpha;
        if width.abs() <= 1e-14 * lo.alpha.abs().max(1e-14) {
            break;
        }
        let alpha = match cubic_minimum(&lo, &hi) {
            Some(a) if (a - lo.alpha) / width >= 0.1 && (a - lo.alpha) / width <= 0.9 => a,
            _ => lo.alpha + 0.5 * width,
        };
        let p = phi(alpha);
        if !armijo(&p) || p.f >= lo.f {
            hi = p;
        } else {
            if p.slope.abs() <= -C2 * start.slope {
                return Some(p);
            }
            if p.slope * (hi.alpha - lo.alpha) >= 0.0 {
                hi = lo;
            }
            lo = p;
        }
    }
    (lo.alpha > 0.0 && lo.f < start.f).then_some(lo)
}

/// The minimiser of the cubic through two points with their slopes (Nocedal and Wright (3.59)).
fn cubic_minimum(p: &Point, q: &Point) -> Option<f64> {
    if !(p.f.is_finite() && q.f.is_finite() && p.slope.is_finite() && q.slope.is_finite()) {
        return None;
    }
    let d1 = p.slope + q.slope - 3.0 * (p.f - q.f) / (p.alpha - q.alpha);
    let disc = d1 * d1 - p.slope * q.slope;
    if disc < 0.0 {
        return None;
    }
    let d2 = (q.alpha - p.alpha).signum() * disc.sqrt();
    let a = q.alpha - (q.alpha - p.alpha) * (q.slope + d2 - d1) / (q.slope - p.slope + 2.0 * d2);
    a.is_finite().then_some(a)
}

/// H ← (I − ρsyᵀ) H (I − ρysᵀ) + ρssᵀ, ρ = 1/(yᵀs).
fn update(h: &mut [Vector; N], s: &Vector, y: &Vector, sy: f64) {
    let rho = 1.0 / sy;
    let hy: Vector = std::array::from_fn(|i| dot(&h[i], y));
    let yhy = dot(y, &hy);
    for i in 0..N {
        for j in 0..N {
            h[i][j] += rho * ((1.0 + rho * yhy) * s[i] * s[j] - hy[i] * s[j] - s[i] * hy[j]);
        }
    }
}

fn identity() -> [Vector; N] {
    std::array::from_fn(|i| std::array::from_fn(|j| if i == j { 1.0 } else { 0.0 }))
}

fn descent(h: &[Vector; N], g: &Vector) -> Vector {
    std::array::from_fn(|i| -dot(&h[i], g))
}

fn dot(a: &Vector, b: &Vector) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &Vector) -> f64 {
    dot(a, a).sqrt()
}

fn sub(a: &Vector, b: &Vector) -> Vector {
    std::array::from_fn(|i| a[i] - b[i])
}

fn axpy(x: &Vector, alpha: f64, d: &Vector) -> Vector {
    std::array::from_fn(|i| x[i] + alpha * d[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings { max_iterations: 500, tolerance: 1e-14, max_step: 5.0, bound: 50.0 }
    }

    /// The four-variable Rosenbrock function: minimum 0 at (1, 1, 1, 1).
    fn rosenbrock(x: &Vector) -> (f64, Vector) {
        let mut f = 0.0;
        let mut g = [0.0; N];
        for i in 0..N - 1 {
            let a = x[i + 1] - x[i] * x[i];
            let b = 1.0 - x[i];
            f += 100.0 * a * a + b * b;
            g[i] += -400.0 * x[i] * a - 2.0 * b;
            g[i + 1] += 200.0 * a;
        }
        (f, g)
    }

    #[test]
    fn finds_the_rosenbrock_minimum() {
        let out = minimise(rosenbrock, [-1.2, 1.0, -1.2, 1.0], &settings());
        assert_eq!(out.stop, Stop::Converged, "{out:?}");
        for v in out.x {
            assert!((v - 1.0).abs() < 1e-5, "{out:?}");
        }
    }

    #[test]
    fn steps_back_from_where_the_function_is_undefined() {
        // f = Σ −10xᵢ − ln(3 − xᵢ): undefined for xᵢ ≥ 3, minimum at xᵢ = 2.9. The first trial
        // step from 0 lands at 5, where f is undefined.
        let f = |x: &Vector| {
            let mut v = 0.0;
            let mut g = [0.0; N];
            for i in 0..N {
                v += -10.0 * x[i] - (3.0 - x[i]).ln();
                g[i] = -10.0 + 1.0 / (3.0 - x[i]);
            }
            (if v.is_nan() { f64::INFINITY } else { v }, g)
        };
        let out = minimise(f, [0.0; N], &settings());
        assert_eq!(out.stop, Stop::Converged, "{out:?}");
        for v in out.x {
            assert!((v - 2.9).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn reports_running_out_of_iterations() {
        let out = minimise(rosenbrock, [-1.2, 1.0, -1.2, 1.0], &Settings { max_iterations: 3, ..settings() });
        assert_eq!(out.stop, Stop::MaxIterations);
        assert_eq!(out.iterations, 3);
    }

    #[test]
    fn reports_a_non_finite_start() {
        let out = minimise(|_| (f64::NAN, [0.0; N]), [0.0; N], &settings());
        assert_eq!(out.stop, Stop::NonFinite);
    }

    #[test]
    fn stops_at_the_box_when_the_minimum_is_outside() {
        // f = e^{−x₀} + Σ_{i>0} xᵢ²: decreasing forever in x₀.
        let f = |x: &Vector| {
            let v = (-x[0]).exp() + x[1..].iter().map(|v| v * v).sum::<f64>();
            (v, [-(-x[0]).exp(), 2.0 * x[1], 2.0 * x[2], 2.0 * x[3]])
        };
        let out = minimise(f, [0.0, 1.0, 1.0, 1.0], &Settings { bound: 10.0, ..settings() });
        assert!(out.x[0] > 9.9, "{out:?}");
    }
}
