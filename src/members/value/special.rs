//! The special functions the BG/NBD model needs: lnΓ (libm's, a port of musl's `lgamma`) and the
//! digamma function ψ = (lnΓ)′ for the analytic gradient of the likelihood.

/// ln Γ(x) for x > 0.
pub(crate) fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// ψ(x) for x > 0: the recurrence ψ(x) = ψ(x + 1) − 1/x up to x ≥ 10, then the asymptotic
/// series ln x − 1/(2x) − Σ B₂ₖ / (2k x²ᵏ) to k = 6, whose first omitted term is below 1e-15
/// there.
pub(crate) fn digamma(mut x: f64) -> f64 {
    let mut shift = 0.0;
    while x < 10.0 {
        shift -= 1.0 / x;
        x += 1.0;
    }
    let inv2 = 1.0 / (x * x);
    // B₂/2, B₄/4, … B₁₂/12 with their signs folded in, innermost last.
    let tail = inv2
        * (1.0 / 12.0
            - inv2
                * (1.0 / 120.0
                    - inv2 * (1.0 / 252.0 - inv2 * (1.0 / 240.0 - inv2 * (1.0 / 132.0 - inv2 * (691.0 / 32760.0))))));
    shift + x.ln() - 0.5 / x - tail
}

/// ln(1 + eʸ) without overflow.
pub(crate) fn softplus(y: f64) -> f64 {
    y.max(0.0) + (-y.abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

    fn check(got: f64, want: f64, rel: f64) {
        assert!((got - want).abs() <= rel * want.abs().max(1e-300), "got {got:e}, want {want:e}");
    }

    #[test]
    fn digamma_matches_closed_forms() {
        // ψ(1) = −γ; ψ(1/2) = −γ − 2 ln 2; ψ(n + 1) = H_n − γ; ψ(1/4) = −γ − π/2 − 3 ln 2.
        check(digamma(1.0), -EULER_GAMMA, 1e-14);
        check(digamma(0.5), -EULER_GAMMA - 2.0 * std::f64::consts::LN_2, 1e-14);
        let harmonic_20: f64 = (1..=20).map(|k| 1.0 / k as f64).sum();
        check(digamma(21.0), harmonic_20 - EULER_GAMMA, 1e-14);
        check(digamma(0.25), -EULER_GAMMA - std::f64::consts::FRAC_PI_2 - 3.0 * std::f64::consts::LN_2, 1e-13);
        // ψ(1000) from the asymptotic series by hand: ln 1000 − 1/2000 − 1/(12·10⁶).
        check(digamma(1000.0), 1000f64.ln() - 1.0 / 2000.0 - 1.0 / 12e6, 1e-14);
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        check(ln_gamma(1.0).exp(), 1.0, 1e-15);
        check(ln_gamma(11.0), 3_628_800f64.ln(), 1e-15);
        check(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln(), 1e-14);
    }

    #[test]
    fn softplus_is_stable_at_both_ends() {
        check(softplus(0.0), std::f64::consts::LN_2, 1e-15);
        check(softplus(800.0), 800.0, 1e-15);
        check(softplus(-800.0), 0.0, 1e-15);
        check(softplus(-30.0), (-30f64).exp(), 1e-12);
    }
}
