using static TorchSharp.torch;

namespace Diffuse.Denoisers;

/// <summary>Estimates of the clean data and the noise for a batch of noisy inputs.</summary>
/// <param name="X0">Estimate of x0, the same shape as the input.</param>
/// <param name="Eps">Estimate of ε, the same shape as the input.</param>
public readonly record struct DenoiserOutput(Tensor X0, Tensor Eps);

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
