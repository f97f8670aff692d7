using static TorchSharp.torch;

namespace Diffuse.Denoisers;

/// <summary>Estimates of the clean data and the noise for a batch of noisy inputs.</summary>
/// <param name="X0">Estimate of x0, the same shape as the input.</param>
/// <param name="Eps">Estimate of ε, the same shape as the input.</param>
public readonly record struct DenoiserOutput(Tensor X0, Tensor Eps)
{
    /// <summary>
    /// The learned interpolation fraction f of the reverse step's variance (Nichol and Dhariwal 2021, eq. 15), the same
    /// shape as the input, or null when the model does not learn its variance. The variance of the step from t to s is
    /// Σ = exp(f·log β + (1 − f)·log β̃) with β and β̃ of that step (respaced for a timestep subsequence; see
    /// <see cref="Parameterization.LearnedVariance"/>); f is stored rather than Σ because only the sampler knows s.
    /// The DDPM sampler and <see cref="Evaluation.Likelihoods.VariationalBound"/> use it when present; the other samplers ignore it.
    /// </summary>
    public Tensor? VarianceFraction { get; init; }
}

/// <summary>
/// What every sampler and the variational bound see of a model: given z_t at a discrete timestep index n (the paper's
/// t = n + 1), the estimates E[x0 | z_t] and the implied ε. Trained networks, exact analytic denoisers and guidance
/// decorators all implement it, so any sampler drives any of them.
/// </summary>
public interface IDenoiser
{
    /// <summary>Denoises a batch <paramref name="z"/> [B, ...] whose rows are all at timestep index <paramref name="timestep"/>.</summary>
    DenoiserOutput Denoise(Tensor z, int timestep);
}
