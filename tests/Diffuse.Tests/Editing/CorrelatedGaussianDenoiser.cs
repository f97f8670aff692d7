using Diffuse.Denoisers;
using Diffuse.Parameterization;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Tests.Editing;

/// <summary>
/// The exact denoiser of correlated Gaussian data x ~ N(μ, Σ): with z = a·x + b·ε, E[x | z] = μ + a·Σ·(a²·Σ + b²·I)⁻¹·(z − a·μ).
/// Its conditionals are known in closed form, so inpainting can be checked against them.
/// </summary>
internal sealed class CorrelatedGaussianDenoiser : ISigmaDenoiser
{
    private readonly double[] _mean;
    private readonly double[,] _covariance;

    public CorrelatedGaussianDenoiser(double[] mean, double[,] covariance)
    {
        _mean = mean;
        _covariance = covariance;
    }

    public DenoiserOutput DenoiseAtSigma(Tensor z, double sigma)
    {
        using var scope = NewDisposeScope();
        double alphaBar = NoiseSchedule.AlphaBarOfSigma(sigma), a = Math.Sqrt(alphaBar), b2 = 1 - alphaBar;
        int d = _mean.Length;
        var cov = tensor(_covariance, dtype: ScalarType.Float64);
        var mu = tensor(_mean, dtype: ScalarType.Float64);
        // G = a·Σ·(a²Σ + b²I)⁻¹; Σ and the inverse commute, so G is symmetric and x0 = μ + (z − aμ)·G.
        var gain = a * linalg.solve(alphaBar * cov + b2 * eye(d, dtype: ScalarType.Float64), cov);
        var x0 = (mu + (z.to_type(ScalarType.Float64) - a * mu).matmul(gain)).to_type(z.dtype);
        var eps = PredictionConversion.EpsFromX0(x0, z, tensor(alphaBar, dtype: z.dtype));
        return new DenoiserOutput(x0.MoveToOuterDisposeScope(), eps.MoveToOuterDisposeScope());
    }
}
