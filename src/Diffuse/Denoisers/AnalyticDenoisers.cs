using Diffuse.Parameterization;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Denoisers;

/// <summary>
/// The exact denoiser for Gaussian data x ~ N(μ, diag(s²)): with z = a·x + b·ε (a = √ᾱ, b² = 1 − ᾱ),
/// E[x | z] = μ + a·s²/(a²·s² + b²)·(z − a·μ). Used to test samplers and bounds against closed forms. Exact at every
/// noise level, trained or not (σ-space: D(x; σ) = μ + s²/(s² + σ²)·(x − μ)).
/// </summary>
public sealed class GaussianDenoiser : IDenoiser, ISigmaDenoiser
{
    private readonly NoiseSchedule _schedule;
    private readonly double[] _mean;
    private readonly double[] _variance;

    /// <summary>Creates the exact denoiser for N(<paramref name="mean"/>, diag(<paramref name="variance"/>)) under <paramref name="schedule"/>.</summary>
    public GaussianDenoiser(NoiseSchedule schedule, double[] mean, double[] variance)
    {
        if (mean.Length != variance.Length) throw new ArgumentException("mean and variance need the same length");
        _schedule = schedule;
        _mean = mean;
        _variance = variance;
    }

    /// <inheritdoc />
    public DenoiserOutput Denoise(Tensor z, int timestep) => DenoiseAtAlphaBar(z, _schedule.AlphaBar(timestep));

    /// <inheritdoc />
    public DenoiserOutput DenoiseAtSigma(Tensor z, double sigma) => DenoiseAtAlphaBar(z, NoiseSchedule.AlphaBarOfSigma(sigma));

    private DenoiserOutput DenoiseAtAlphaBar(Tensor z, double alphaBar)
    {
        using var scope = NewDisposeScope();
        double a = Math.Sqrt(alphaBar), b2 = 1 - alphaBar;
        var mean = tensor(_mean, dtype: z.dtype, device: z.device);
        var gain = tensor(_variance.Select(s2 => a * s2 / (alphaBar * s2 + b2)).ToArray(), dtype: z.dtype, device: z.device);
        var x0 = mean + gain * (z - a * mean);
        var eps = PredictionConversion.EpsFromX0(x0, z, tensor(alphaBar, dtype: z.dtype, device: z.device));
        return new DenoiserOutput(x0.MoveToOuterDisposeScope(), eps.MoveToOuterDisposeScope());
    }
}

/// <summary>
/// The exact denoiser for a mixture of isotropic Gaussians Σ_k w_k·N(μ_k, s_k²·I): the noisy marginal is
/// Σ_k w_k·N(a·μ_k, (a²·s_k² + b²)·I), and E[x | z] = Σ_k r_k(z)·(μ_k + a·s_k²/(a²·s_k² + b²)·(z − a·μ_k)) with the
/// posterior responsibilities r_k(z). Its score is exact at every noise level, so samplers can be tested on
/// multi-modal data.
/// </summary>
public sealed class GaussianMixtureDenoiser : IDenoiser, ISigmaDenoiser, IConditionalDenoiser
{
    private readonly NoiseSchedule _schedule;
    private readonly double[] _weights;
    private readonly double[,] _means;
    private readonly double[] _variances;

    /// <summary>Creates the denoiser; <paramref name="means"/> is [K, D], one row per component.</summary>
    public GaussianMixtureDenoiser(NoiseSchedule schedule, double[] weights, double[,] means, double[] variances)
    {
        _schedule = schedule;
        _weights = weights;
        _means = means;
        _variances = variances;
    }

    /// <inheritdoc />
    public DenoiserOutput Denoise(Tensor z, int timestep) => DenoiseAtAlphaBar(z, _schedule.AlphaBar(timestep), null);

    /// <inheritdoc />
    public DenoiserOutput DenoiseAtSigma(Tensor z, double sigma) => DenoiseAtAlphaBar(z, NoiseSchedule.AlphaBarOfSigma(sigma), null);

    /// <summary>
    /// The exact conditional denoiser: a row with class k ≥ 0 is denoised under component k alone (its Gaussian
    /// posterior mean); a row with class −1, or every row when <paramref name="classes"/> is null, under the mixture.
    /// </summary>
    public DenoiserOutput Denoise(Tensor z, int timestep, Tensor? classes) => DenoiseAtAlphaBar(z, _schedule.AlphaBar(timestep), classes);

    /// <inheritdoc />
    public DenoiserOutput DenoiseAtSigma(Tensor z, double sigma, Tensor? classes) => DenoiseAtAlphaBar(z, NoiseSchedule.AlphaBarOfSigma(sigma), classes);

    private DenoiserOutput DenoiseAtAlphaBar(Tensor z, double alphaBar, Tensor? classes)
    {
        using var scope = NewDisposeScope();
        double a = Math.Sqrt(alphaBar), b2 = 1 - alphaBar;
        var zd = z.to_type(ScalarType.Float64);
        long dims = zd.shape[1];
        var means = tensor(_means, dtype: ScalarType.Float64, device: z.device);                          // [K, D]
        var s2 = tensor(_variances, dtype: ScalarType.Float64, device: z.device);                         // [K]
        var noisyVar = alphaBar * s2 + b2;                                              // [K]
        var diff = zd.unsqueeze(1) - a * means.unsqueeze(0);                            // [B, K, D]
        var logLik = -0.5 * diff.square().sum(2) / noisyVar - 0.5 * dims * noisyVar.log() + tensor(_weights, dtype: ScalarType.Float64, device: z.device).log();
        var resp = logLik.softmax(1);                                                   // [B, K]
        if (classes is not null)
        {
            var known = classes >= 0;
            var oneHot = TorchSharp.torch.nn.functional.one_hot(classes.clamp_min(0), _weights.Length).to_type(ScalarType.Float64);
            resp = where(known.unsqueeze(1), oneHot, resp);
        }
        var componentMeans = means.unsqueeze(0) + (a * s2 / noisyVar).view(1, -1, 1) * diff;
        var x0 = (resp.unsqueeze(2) * componentMeans).sum(1).to_type(z.dtype);
        var eps = PredictionConversion.EpsFromX0(x0, z, tensor(alphaBar, dtype: z.dtype, device: z.device));
        return new DenoiserOutput(x0.MoveToOuterDisposeScope(), eps.MoveToOuterDisposeScope());
    }
}
