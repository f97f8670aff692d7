using static TorchSharp.torch;

namespace Diffuse.Evaluation.Likelihoods;

/// <summary>
/// The discretised Gaussian decoder for 8-bit data scaled to [−1, 1] (Ho et al. 2020, §3.3, eq. 13): the probability
/// of pixel value x is the mass of N(μ, σ²) on its bin [x − 1/255, x + 1/255], with the outer bins extended to ±∞ so the
/// 256 probabilities sum to one. The resulting −log p is a discrete likelihood: no change of units applies, and
/// dividing by ln 2 and the number of dimensions gives bits per dimension.
/// </summary>
public sealed class DiscretizedGaussianDecoder : IDataDecoder
{
    /// <summary>Half the width of one of the 256 bins in [−1, 1].</summary>
    public const double HalfBin = 1.0 / 255.0;

    /// <inheritdoc />
    public Tensor NegativeLogLikelihood(Tensor x, Tensor mean, double variance)
    {
        using var sigma = tensor(Math.Sqrt(variance), dtype: ScalarType.Float64, device: x.device);
        return NegativeLogLikelihoodOfScale(x, mean, sigma);
    }

    /// <inheritdoc />
    public Tensor NegativeLogLikelihood(Tensor x, Tensor mean, Tensor variance)
    {
        using var scope = NewDisposeScope();
        var sigma = variance.to_type(ScalarType.Float64).broadcast_to(x.shape).flatten(1).sqrt();
        return NegativeLogLikelihoodOfScale(x, mean, sigma).MoveToOuterDisposeScope();
    }

    /// <summary>The bin masses under N(mean, σ²) with σ a scalar or one per flattened element.</summary>
    private static Tensor NegativeLogLikelihoodOfScale(Tensor x, Tensor mean, Tensor sigma)
    {
        using var scope = NewDisposeScope();
        var xd = x.flatten(1).to_type(ScalarType.Float64);
        var mu = mean.flatten(1).to_type(ScalarType.Float64);
        var upper = (xd + HalfBin - mu) / sigma;
        var lower = (xd - HalfBin - mu) / sigma;
        // Mass of the bin, computed on the side of the tail it lies in so that far-tail bins do not cancel to zero.
        var massLeft = special.ndtr(upper) - special.ndtr(lower);
        var massRight = special.ndtr(-lower) - special.ndtr(-upper);
        var mass = where(lower > 0, massRight, massLeft);
        mass = where(xd < -1 + HalfBin, special.ndtr(upper), mass);       // x = −1: (−∞, −1 + 1/255]
        mass = where(xd > 1 - HalfBin, special.ndtr(-lower), mass);       // x = +1: [1 − 1/255, ∞)
        return (-mass.clamp_min(1e-300).log()).sum(1).MoveToOuterDisposeScope();
    }
}
