//! glucobench 0.4.1's `ExpLikeliLoss`: the negative log-likelihood of the
//! truth under an equal-weight mixture of Gaussians, one per MC-dropout
//! pass, each centred on that pass's forecast with the variance the
//! variance head predicts (no constant terms, as the reference writes it).

use candle_core::{D, Tensor};

use super::TrainError;

/// `mean_b( -logsumexp_s( -Lp/2 · logvar[b,s] - Σ_t (y[b,t] - ŷ[b,s,t])² / (2·exp(logvar[b,s])) ) )`.
///
/// `pred` and `target` are (B·S, Lp, 1), `logvar` (B·S, 1, 1), with each
/// window's S samples in consecutive rows (as the reference's collate
/// repeats them).
pub fn exp_likeli_loss(
    pred: &Tensor,
    target: &Tensor,
    logvar: &Tensor,
    samples: usize,
) -> Result<Tensor, TrainError> {
    let (rows, lp, _) = pred.dims3()?;
    if samples == 0 || rows % samples != 0 {
        return Err(TrainError::Config(format!(
            "{rows} rows do not split into samples of {samples}"
        )));
    }
    let b = rows / samples;
    let sse = target
        .sub(pred)?
        .sqr()?
        .sum((1, 2))?
        .reshape((b, samples))?;
    let lv = logvar.reshape((b, samples))?;
    let a = (lv.affine(-(lp as f64) / 2.0, 0.0)? - sse.div(&lv.exp()?.affine(2.0, 0.0)?)?)?;
    let m = a.max_keepdim(D::Minus1)?.detach();
    let lse = a
        .broadcast_sub(&m)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        .add(&m)?;
    Ok(lse.neg()?.mean_all()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The loss written out by hand for two windows of two samples.
    #[test]
    fn matches_the_formula_and_has_gradients() {
        let dev = Device::Cpu;
        let pred = Var::from_vec(
            vec![0.1f32, 0.2, 0.3, 0.5, 0.0, 0.1, 0.9, 1.0],
            (4, 2, 1),
            &dev,
        )
        .unwrap();
        let target = Tensor::from_vec(
            vec![0.2f32, 0.2, 0.2, 0.2, 0.5, 0.5, 0.5, 0.5],
            (4, 2, 1),
            &dev,
        )
        .unwrap();
        let logvar = Tensor::from_vec(vec![-1.0f32, -2.0, 0.5, -0.5], (4, 1, 1), &dev).unwrap();
        let loss = exp_likeli_loss(pred.as_tensor(), &target, &logvar, 2).unwrap();
        let p = [0.1f64, 0.2, 0.3, 0.5, 0.0, 0.1, 0.9, 1.0];
        let y = [0.2f64, 0.2, 0.2, 0.2, 0.5, 0.5, 0.5, 0.5];
        let lv = [-1.0f64, -2.0, 0.5, -0.5];
        let term = |r: usize| {
            let sse: f64 = (0..2).map(|t| (y[r * 2 + t] - p[r * 2 + t]).powi(2)).sum();
            -lv[r] - sse / (2.0 * lv[r].exp())
        };
        let lse = |a: f64, b: f64| a.max(b) + ((a - a.max(b)).exp() + (b - a.max(b)).exp()).ln();
        let want = -(lse(term(0), term(1)) + lse(term(2), term(3))) / 2.0;
        let got = loss.to_scalar::<f32>().unwrap() as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        let grads = loss.backward().unwrap();
        let g = grads.get(&pred).unwrap().flatten_all().unwrap();
        assert!(g.to_vec1::<f32>().unwrap().iter().any(|v| v.abs() > 1e-4));
        assert!(exp_likeli_loss(pred.as_tensor(), &target, &logvar, 3).is_err());
    }
}
