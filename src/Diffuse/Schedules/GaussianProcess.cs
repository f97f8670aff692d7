using static TorchSharp.torch;

namespace Diffuse.Schedules;

/// <summary>Mean coefficients and variance of the Bayes posterior q(z_s | z_t, x) between two noise levels.</summary>
/// <param name="X0Coef">Coefficient of x in the posterior mean.</param>
/// <param name="ZCoef">Coefficient of z_t in the posterior mean.</param>
/// <param name="Variance">Posterior variance β̃.</param>
/// <param name="StepBeta">β' = 1 − ᾱ_t/ᾱ_s, the variance of the forward step from s to t.</param>
public readonly record struct PosteriorCoefficients(double X0Coef, double ZCoef, double Variance, double StepBeta);

/// <summary>
/// The fixed encoder of a variance-preserving diffusion in closed form (Ho et al. 2020, eqs. 4, 6, 7).
/// Notation map: ᾱ_t signal fraction at the later level t, ᾱ_s at the earlier level s (s &lt; t; ᾱ_s = 1 at data).
/// </summary>
public static class GaussianProcess
{
    /// <summary>
    /// Forward marginal sample z_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε (Ho et al. 2020, eq. 4). The square roots keep the total
    /// variance at 1 for unit-variance data: Var z = ᾱ·Var x + (1 − ᾱ).
    /// </summary>
    public static Tensor Noise(Tensor x0, Tensor alphaBar, Tensor eps) => alphaBar.sqrt() * x0 + (1 - alphaBar).sqrt() * eps;

    /// <summary>
    /// Posterior q(z_s | z_t, x) = N(X0Coef·x + ZCoef·z_t, β̃) by Bayes' rule (Ho et al. 2020, eqs. 6–7), written for
    /// any pair of levels so respaced subsequences use it unchanged: β' = 1 − ᾱ_t/ᾱ_s,
    /// X0Coef = √ᾱ_s·β'/(1 − ᾱ_t), ZCoef = √(1 − β')·(1 − ᾱ_s)/(1 − ᾱ_t), β̃ = (1 − ᾱ_s)/(1 − ᾱ_t)·β'.
    /// </summary>
    public static PosteriorCoefficients Posterior(double alphaBarT, double alphaBarS)
    {
        double stepBeta = 1 - alphaBarT / alphaBarS;
        double x0Coef = Math.Sqrt(alphaBarS) * stepBeta / (1 - alphaBarT);
        double zCoef = Math.Sqrt(1 - stepBeta) * (1 - alphaBarS) / (1 - alphaBarT);
        double variance = (1 - alphaBarS) / (1 - alphaBarT) * stepBeta;
        return new PosteriorCoefficients(x0Coef, zCoef, variance, stepBeta);
    }

    /// <summary>
    /// KL divergence KL(N(μ1, v1·I) ‖ N(μ2, v2·I)) per row, summed over all non-batch dimensions, in nats:
    /// ½·Σ[log(v2/v1) + (v1 + (μ1 − μ2)²)/v2 − 1].
    /// </summary>
    public static Tensor GaussianKl(Tensor mean1, double variance1, Tensor mean2, double variance2)
    {
        using var scope = NewDisposeScope();
        var diff = (mean1 - mean2).flatten(1);
        long dims = diff.shape[1];
        var constant = 0.5 * dims * (Math.Log(variance2 / variance1) + variance1 / variance2 - 1);
        return (diff.square().sum(1) * (0.5 / variance2) + constant).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// KL divergence KL(N(μ1, diag e^(l1)) ‖ N(μ2, diag e^(l2))) per row with elementwise log-variances l1, l2 (each
    /// broadcasting against the means), summed over all non-batch dimensions, in nats:
    /// ½·Σ[l2 − l1 + (e^(l1) + (μ1 − μ2)²)·e^(−l2) − 1].
    /// </summary>
    public static Tensor GaussianKl(Tensor mean1, Tensor logVariance1, Tensor mean2, Tensor logVariance2)
    {
        using var scope = NewDisposeScope();
        var kl = 0.5 * (logVariance2 - logVariance1 + (logVariance1.exp() + (mean1 - mean2).square()) * (-logVariance2).exp() - 1);
        return kl.flatten(1).sum(1).MoveToOuterDisposeScope();
    }
}
