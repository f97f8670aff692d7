using Diffuse.Denoisers;
using Diffuse.Parameterization;
using Diffuse.Randomness;
using Diffuse.Sampling;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Evaluation.Likelihoods;

/// <summary>
/// The decoder p(x | z_1) that closes the variational bound: the term L_0 = −log p(x | z_1). Continuous data use a
/// Gaussian; 8-bit data will use a discretised Gaussian (Ho et al. 2020, §3.3) behind the same interface.
/// </summary>
public interface IDataDecoder
{
    /// <summary>−log p(x | z_1) per row in nats, summed over all non-batch dimensions; <paramref name="mean"/> is the decoder mean, <paramref name="variance"/> its variance.</summary>
    Tensor NegativeLogLikelihood(Tensor x, Tensor mean, double variance);

    /// <summary>
    /// The same with a variance per element (a learned variance, Nichol and Dhariwal 2021): <paramref name="variance"/>
    /// broadcasts against <paramref name="x"/>. Differentiable in <paramref name="variance"/>.
    /// </summary>
    Tensor NegativeLogLikelihood(Tensor x, Tensor mean, Tensor variance);
}

/// <summary>A Gaussian decoder N(x; mean, variance·I) for continuous data.</summary>
public sealed class GaussianDecoder : IDataDecoder
{
    /// <inheritdoc />
    public Tensor NegativeLogLikelihood(Tensor x, Tensor mean, double variance)
    {
        using var scope = NewDisposeScope();
        var diff = (x - mean).flatten(1).to_type(ScalarType.Float64);
        long dims = diff.shape[1];
        return (diff.square().sum(1) * (0.5 / variance) + 0.5 * dims * Math.Log(2 * Math.PI * variance)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public Tensor NegativeLogLikelihood(Tensor x, Tensor mean, Tensor variance)
    {
        using var scope = NewDisposeScope();
        var v = variance.to_type(ScalarType.Float64);
        var nll = 0.5 * ((x - mean).to_type(ScalarType.Float64).square() / v + (2 * Math.PI * v).log());
        return nll.broadcast_to(x.shape).flatten(1).sum(1).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The fixed variance of the decoder p(x | z_1) that closes the variational bound (for a model that does not learn its
/// variance; one that does uses its own at t = 1 in either case).
/// </summary>
public enum DecoderVariance
{
    /// <summary>
    /// β̃_2, the posterior variance of the second step (Ho et al. 2020's code and improved-diffusion's
    /// <c>posterior_log_variance_clipped</c>, which clip the β̃_1 = 0 of the first step to the second's, for either
    /// reverse variance): the convention of published bits/dim tables, and the default.
    /// </summary>
    ClippedPosterior,

    /// <summary>β_1, the variance of the first forward step (the convention of Diffuse 0.1.0's bound).</summary>
    FirstBeta,
}

/// <summary>The variational bound over a data set, with its parts, per dimension.</summary>
/// <param name="NatsPerDim">The bound −ELBO per dimension in nats, in the data's original units.</param>
/// <param name="StdError">Standard error of <paramref name="NatsPerDim"/> across data points.</param>
/// <param name="PriorNatsPerDim">L_T: KL(q(z_T | x) ‖ N(0, I)) per dimension.</param>
/// <param name="DiffusionNatsPerDim">Σ_{t≥2} L_{t−1} per dimension.</param>
/// <param name="DecoderNatsPerDim">L_0 = −log p(x | z_1) per dimension, including the change of units.</param>
/// <param name="Count">Number of data points.</param>
/// <param name="Dimensions">Dimensions per data point.</param>
public sealed record BoundResult(double NatsPerDim, double StdError, double PriorNatsPerDim, double DiffusionNatsPerDim,
    double DecoderNatsPerDim, int Count, long Dimensions)
{
    /// <summary>The bound in bits per dimension: nats / ln 2.</summary>
    public double BitsPerDim => NatsPerDim / Math.Log(2);

    /// <summary>Standard error in bits per dimension.</summary>
    public double BitsStdError => StdError / Math.Log(2);
}

/// <summary>
/// The variational bound on the negative log-likelihood (Ho et al. 2020, eq. 5; Sohl-Dickstein et al. 2015):
/// L = L_T + Σ_{t=2}^{T} L_{t−1} + L_0 with L_T = KL(q(z_T | x) ‖ N(0, I)),
/// L_{t−1} = KL(q(z_{t−1} | z_t, x) ‖ p(z_{t−1} | z_t)) and L_0 = −log p(x | z_1), every term exact for its sampled z_t.
/// The reverse step p(z_{t−1} | z_t) = N(μ̃(z_t, x̂0), σ_t²) uses the model's x0 estimate and DDPM's variance choice; the
/// decoder's variance is β̃_2 by default, as in Ho et al.'s and improved-diffusion's code (see <see cref="DecoderVariance"/>).
/// The noised state z_t is formed in double precision and handed to the network in single precision, so that
/// 1 − ᾱ_t keeps its digits where ᾱ_t is close to 1. A model that learns its variance (<see cref="DenoiserOutput.VarianceFraction"/>) uses its
/// own σ_t² at every step instead, and at t = 1 as the decoder's variance (Nichol and Dhariwal 2021, eq. 15). Every t is evaluated with its own z_t ~ q(z_t | x), so the estimate is unbiased, and
/// the standard error is over data points.
/// </summary>
public static class VariationalBound
{
    /// <summary>
    /// The timestep indices a batch evaluates and the weight of each: every index with weight 1, or index 0 (the decoder)
    /// then one uniform draw from each of <paramref name="samples"/> equal strata of 1 … T − 1, weighted by the stratum's size.
    /// </summary>
    public static (int[] Steps, double[] Weights) TimestepsOfBatch(int timesteps, int samples, ulong seed, int batch)
    {
        if (samples <= 0 || samples >= timesteps - 1)
            return (Enumerable.Range(0, timesteps).ToArray(), Enumerable.Repeat(1.0, timesteps).ToArray());
        var steps = new int[samples + 1];
        var weights = new double[samples + 1];
        weights[0] = 1;
        for (int j = 0; j < samples; j++)
        {
            int lo = 1 + (int)((long)j * (timesteps - 1) / samples), hi = 1 + (int)((long)(j + 1) * (timesteps - 1) / samples);
            steps[j + 1] = lo + SeededNoise.UniformInt(seed, StratumStream, (ulong)batch * (ulong)samples + (ulong)j, hi - lo);
            weights[j + 1] = hi - lo;
        }
        return (steps, weights);
    }

    /// <summary>Stream of the stratified timestep draws (the noise of timestep n uses stream n &lt; T).</summary>
    private const ulong StratumStream = StreamDomains.BoundStrata;

    /// <summary>
    /// Computes the bound for the rows of <paramref name="data"/> (in model units). <paramref name="logScalePerDim"/> is
    /// the mean log-scale of the transform from original units to model units (for standardised data, mean log std):
    /// it is added so that the result is in the data's original units.
    /// <para>
    /// With <paramref name="timestepSamples"/> K &gt; 0 (and below T − 1), each batch evaluates the decoder term, the
    /// prior and K of the T − 1 diffusion terms: one timestep drawn uniformly from each of K equal strata of 2 … T,
    /// weighted by its stratum's size. The sum is then an unbiased, stratified Monte Carlo estimate of Σ L_{t−1}, at K/T
    /// of the cost; the draws are shared by the rows of a batch, so use small batches (many independent draws) for the
    /// standard error over rows to include the timestep sampling's variance.
    /// </para>
    /// </summary>
    public static BoundResult Compute(IDenoiser denoiser, NoiseSchedule schedule, Tensor data, ulong seed,
        DdpmVariance variance = DdpmVariance.Small, IDataDecoder? decoder = null, double logScalePerDim = 0,
        int batchSize = 4096, Action<int, int>? onProgress = null, int timestepSamples = 0,
        DecoderVariance decoderVariance = DecoderVariance.ClippedPosterior)
    {
        if (timestepSamples < 0) throw new DiffuseException($"the number of timesteps sampled per batch cannot be negative (got {timestepSamples}).");
        decoder ??= new GaussianDecoder();
        int count = (int)data.shape[0];
        if (count < 2) throw new DiffuseException("the variational bound needs at least two data points.");
        long dims = data[0].numel();
        var elementShape = data.shape.Skip(1).ToArray();
        var prior = new double[count];
        var diffusion = new double[count];
        var decoderTerm = new double[count];
        int T = schedule.Timesteps;
        double fixedDecoderVariance = decoderVariance == DecoderVariance.FirstBeta || T < 2
            ? schedule.Betas[0]
            : GaussianProcess.Posterior(schedule.AlphaBar(1), schedule.AlphaBar(0)).Variance;
        int batches = (count + batchSize - 1) / batchSize;
        int evaluations = 0, totalEvaluations = batches * TimestepsOfBatch(T, timestepSamples, seed, 0).Steps.Length;
        using var noGrad = no_grad();
        for (int start = 0; start < count; start += batchSize)
        {
            var (steps, weights) = TimestepsOfBatch(T, timestepSamples, seed, start / batchSize);
            int size = Math.Min(batchSize, count - start);
            using var batchScope = NewDisposeScope();
            var x = data.narrow(0, start, size).to_type(ScalarType.Float32);
            // L_T, closed form: ½·Σ[ᾱ_T·x² + (1 − ᾱ_T) − 1 − log(1 − ᾱ_T)].
            double abT = schedule.AlphaBar(T - 1);
            var lt = (x.flatten(1).to_type(ScalarType.Float64).square().sum(1) * (0.5 * abT)
                      + 0.5 * dims * (-abT - Math.Log(1 - abT))).cpu().data<double>().ToArray();
            for (int i = 0; i < size; i++) prior[start + i] = lt[i];
            for (int k = 0; k < steps.Length; k++)
            {
                int n = steps[k];
                using var stepScope = NewDisposeScope();
                double alphaBar = schedule.AlphaBar(n);
                var eps = SeededNoise.Normal(seed, StreamDomains.BoundFirstTimestepNoise + (ulong)n, start, size, elementShape, x.device);
                var z = NoisedState(x, alphaBar, eps);
                var output = denoiser.Denoise(z, n);
                var x0Hat = output.X0;
                // A learned variance (Nichol and Dhariwal 2021, eq. 15) replaces DDPM's fixed choice, at every step.
                var logVariance = output.VarianceFraction is { } fraction
                    ? LearnedVariance.LogVariance(fraction.to_type(ScalarType.Float64), LearnedVariance.StepLogVariances(schedule, n))
                    : null;
                double[] term;
                if (n == 0)
                {
                    // L_0 with decoder mean x̂0(z_1) (the posterior mean at t = 1) and the fixed or the learned variance.
                    term = (logVariance is null
                        ? decoder.NegativeLogLikelihood(x, x0Hat, fixedDecoderVariance)
                        : decoder.NegativeLogLikelihood(x, x0Hat, logVariance.exp())).cpu().data<double>().ToArray();
                    for (int i = 0; i < size; i++) decoderTerm[start + i] = term[i];
                }
                else
                {
                    var post = GaussianProcess.Posterior(alphaBar, schedule.AlphaBar(n - 1));
                    var trueMean = (post.X0Coef * x + post.ZCoef * z).to_type(ScalarType.Float64);
                    var modelMean = (post.X0Coef * x0Hat + post.ZCoef * z).to_type(ScalarType.Float64);
                    double modelVariance = variance == DdpmVariance.Small ? post.Variance : post.StepBeta;
                    term = (logVariance is null
                        ? GaussianProcess.GaussianKl(trueMean, post.Variance, modelMean, modelVariance)
                        : GaussianProcess.GaussianKl(trueMean, tensor(Math.Log(post.Variance), device: x.device), modelMean, logVariance)).cpu().data<double>().ToArray();
                    for (int i = 0; i < size; i++) diffusion[start + i] += weights[k] * term[i];
                }
                onProgress?.Invoke(++evaluations, totalEvaluations);
            }
        }
        var total = new double[count];
        for (int i = 0; i < count; i++) total[i] = (prior[i] + diffusion[i] + decoderTerm[i]) / dims + logScalePerDim;
        double mean = total.Average();
        double variance2 = total.Sum(v => (v - mean) * (v - mean)) / (count - 1);
        return new BoundResult(mean, Math.Sqrt(variance2 / count), prior.Average() / dims, diffusion.Average() / dims,
            decoderTerm.Average() / dims + logScalePerDim, count, dims);
    }

    /// <summary>
    /// z_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε (Ho et al. 2020, eq. 4) formed in double precision, then rounded to single precision for
    /// the network: in single precision ᾱ_t = 1 − 1e−4 keeps only about three digits of 1 − ᾱ_t, and 1 − 1e−8 none.
    /// </summary>
    public static Tensor NoisedState(Tensor x, double alphaBar, Tensor eps)
    {
        using var scope = NewDisposeScope();
        var z = x.to_type(ScalarType.Float64) * Math.Sqrt(alphaBar) + eps.to_type(ScalarType.Float64) * Math.Sqrt(1 - alphaBar);
        return z.to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }
}
